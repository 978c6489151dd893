"""The Redactor, and seeded secrets that must never reach exported spans or logs."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from agentrt import AgentRuntime, ConfigError, Policy, Principal, ToolContext, tool
from agentrt.redaction import luhn_valid
from agentrt.testing import ScriptedChatModel, ai, tool_call
from agentrt.tracing import Redactor
from tests.conftest import FakeClock

API_KEY = "sk-live-4eC39HqLyjWDarjtT1zdp7dc"
EMAIL = "dana.reyes@example.com"
CARD = "4111 1111 1111 1111"
SECRETS = (API_KEY, EMAIL, CARD, CARD.replace(" ", ""), "4111-1111-1111-1111")


def test_luhn() -> None:
    assert luhn_valid("4111111111111111")
    assert luhn_valid("79927398713")
    assert not luhn_valid("4111111111111112")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"write to {EMAIL} today", "write to [REDACTED:email] today"),
        (f"card {CARD} on file", "card [REDACTED:card] on file"),
        ("order 4111 1111 1111 1112 is not a card", "order 4111 1111 1111 1112 is not a card"),
        (f"key={API_KEY}", "key=[REDACTED:api_key]"),
        ("Authorization: Bearer abc.def-ghi_jkl", "Authorization: [REDACTED:bearer]"),
        ("token ghp_" + "a" * 36, "token [REDACTED:api_key]"),
        ("nothing to see, order 42 for $89.00", "nothing to see, order 42 for $89.00"),
    ],
)
def test_detectors_find_secrets_in_text(text: str, expected: str) -> None:
    assert Redactor().redact_text(text) == expected


def test_key_names_tool_fields_and_nesting() -> None:
    value = {
        "password": "hunter2",
        "api_key": "anything",
        "input_tokens": 12,
        "customer": {"name": "Dana", "ssn": "078-05-1120", "pin": "1234"},
        "notes": [f"mail {EMAIL}", {"access_token": "t"}],
    }
    assert Redactor().redact(value, sensitive=["pin"]) == {
        "password": "[REDACTED:field]",
        "api_key": "[REDACTED:field]",
        "input_tokens": 12,
        "customer": {"name": "Dana", "ssn": "[REDACTED:field]", "pin": "[REDACTED:field]"},
        "notes": ["mail [REDACTED:email]", {"access_token": "[REDACTED:field]"}],
    }


def test_json_text_is_redacted_field_by_field() -> None:
    text = '{"note": "ok", "pin": "1234", "to": "' + EMAIL + '"}'
    assert Redactor().redact_text(text, sensitive=["pin"]) == (
        '{"note": "ok", "pin": "[REDACTED:field]", "to": "[REDACTED:email]"}'
    )


def test_hash_and_drop_modes() -> None:
    hashed = Redactor(mode="hash").redact({"password": "hunter2", "to": EMAIL})
    assert hashed["password"].startswith("[field:")
    assert hashed["to"].startswith("[email:")
    assert "hunter2" not in str(hashed)
    # Equal values hash equal (so they can be correlated); another salt, another digest.
    assert Redactor(mode="hash").redact(EMAIL) == hashed["to"]
    assert Redactor(mode="hash", salt="ours").redact(EMAIL) != hashed["to"]

    dropped = Redactor(mode="drop").redact({"password": "x", "note": f"to {EMAIL}", "n": 1})
    assert dropped == {"note": "to ", "n": 1}


def test_bad_redactor_settings() -> None:
    with pytest.raises(ConfigError, match=r"mode must be one of .* got 'blur'"):
        Redactor(mode="blur")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="key pattern is not a regular expression"):
        Redactor(key_patterns=("(",))
    with pytest.raises(ConfigError, match="redactor must be an agentrt Redactor, got 'mask'"):
        AgentRuntime(ScriptedChatModel(["x"]), redactor="mask", tracing=None)  # type: ignore[arg-type]


def _spans_text(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT * FROM spans").fetchall()
    assert rows
    return "\n".join(str(r) for r in rows)


def test_seeded_secrets_never_reach_spans_or_logs(
    db: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    @tool(effect="write", idempotent=True, sensitive=["card_number"])
    def charge(
        customer_email: str, card_number: str, note: str, ctx: ToolContext
    ) -> dict[str, Any]:
        """Charge a card and mail the receipt."""
        return {
            "receipt_to": customer_email,
            "api_key": API_KEY,
            "message": f"charged {card_number} for {customer_email} using {API_KEY}",
        }

    @tool(effect="read")
    def lookup(email: str) -> str:
        """Look up a customer."""
        raise ValueError(f"no customer {email} (card {CARD}, key {API_KEY})")

    args = {
        "customer_email": EMAIL,
        "card_number": CARD,
        "note": f"card 4111-1111-1111-1111 of {EMAIL}, key {API_KEY}",
    }
    model = ScriptedChatModel(
        [
            ai(f"charging {EMAIL}", tool_call("charge", args)),
            ai("", tool_call("lookup", {"email": EMAIL})),
            f"done for {EMAIL}",
        ]
    )
    failing = ScriptedChatModel([RuntimeError(f"upstream refused key {API_KEY} for {EMAIL}")] * 3)
    alice = Principal("alice")
    with caplog.at_level(logging.DEBUG):
        with AgentRuntime(
            model,
            tools=[charge, lookup],
            policy=Policy.allow_all(),
            db=db,
            clock=clock,
            capture_content=True,
        ) as rt:
            assert rt.start("charge", principal=alice).status == "succeeded"
        with AgentRuntime(
            failing, policy=Policy.allow_all(), db=db, clock=clock, capture_content=True
        ) as rt:
            assert rt.start("fail", principal=alice).status == "failed"

    exported = _spans_text(db)
    logs = caplog.text
    for secret in SECRETS:
        assert secret not in exported
        assert secret not in logs
    # The content is there, redacted: capture was on and did its work.
    for marker in ("[REDACTED:email]", "[REDACTED:api_key]", "[REDACTED:card]", "[REDACTED:field]"):
        assert marker in exported
    assert "upstream refused key [REDACTED:api_key] for [REDACTED:email]" in logs
