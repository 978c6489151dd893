"""The Redactor, and seeded secrets that must never reach exported spans or logs."""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest

from agentrt import AgentRuntime, ConfigError, Policy, Principal, ToolContext, tool
from agentrt.redaction import luhn_valid, secret_forms, secrets_pattern
from agentrt.testing import ScriptedChatModel, ai, tool_call
from agentrt.tracing import Redactor
from tests.conftest import FakeClock

API_KEY = "sk-live-4eC39HqLyjWDarjtT1zdp7dc"
EMAIL = "dana.reyes@example.com"
CARD = "4111 1111 1111 1111"
AWS_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJl"
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


PIN = "zebra-58213-quartz"  # no detector knows its shape: only its field says it is secret
NEW_PIN = "maple-90417-comet"


@tool(effect="write", idempotent=True, sensitive=["pin"])
def unlock(door: str, pin: str) -> str:
    """Unlock a door with its pin."""
    return f"door {door} is open"


@tool(effect="write", idempotent=True, sensitive=["pin"])
def new_pin(door: str) -> dict[str, str]:
    """Give a door a new pin."""
    return {"door": door, "pin": NEW_PIN}


def test_an_answer_or_error_that_repeats_a_sensitive_value_is_masked_on_every_span(
    db: Path, clock: FakeClock
) -> None:
    from langgraph.types import RetryPolicy

    opened = ai("", tool_call("unlock", {"door": "back", "pin": PIN}))
    scripts = {
        # The answer repeats an argument the tool declared sensitive...
        "repeats an argument": [opened, f"Opened the back door with pin {PIN}."],
        # ... or a value the tool gave back in a sensitive field.
        "repeats a result": [
            ai("", tool_call("new_pin", {"door": "back"})),
            f"The back door's pin is now {NEW_PIN}.",
        ],
        # The model's provider fails with an error that quotes the argument.
        "fails quoting it": [opened, RuntimeError(f"upstream refused pin {PIN}")],
    }
    ended = {}
    for goal, script in scripts.items():
        with AgentRuntime(
            ScriptedChatModel(script),
            tools=[unlock, new_pin],
            policy=Policy.allow_all(),
            db=db,
            clock=clock,
            capture_content=True,
            model_retry=RetryPolicy(max_attempts=1),
        ) as rt:
            ended[goal] = rt.start(goal, principal=Principal("alice")).status.value
    assert ended == {
        "repeats an argument": "succeeded",
        "repeats a result": "succeeded",
        "fails quoting it": "failed",
    }
    with sqlite3.connect(db) as conn:
        spans = conn.execute("SELECT name, status, attributes, events FROM spans").fetchall()
    leaks = sorted(
        {
            (row[0], part)
            for row in spans
            for part, text in zip(("status", "attributes", "events"), row[1:], strict=True)
            if PIN in str(text) or NEW_PIN in str(text)
        }
    )
    # The agent.run span's output and status, and llm.call's output messages, were masked
    # with the Redactor alone: the pin reached them.
    assert leaks == [], leaks
    shown = "\n".join(str(part) for row in spans for part in row)
    assert "Opened the back door with pin [REDACTED:field]." in shown
    assert "The back door's pin is now [REDACTED:field]." in shown
    assert "upstream refused pin [REDACTED:field]" in shown


def test_a_failed_or_waiting_runs_log_lines_do_not_show_a_sensitive_argument_they_quote(
    db: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """The model's provider fails quoting the pin the run gave ``unlock``, in a shape no
    detector knows: the driver's "failed" line (its traceback) and its "waits to retry"
    lines are masked with the run's log's secrets, as its spans are."""
    from langgraph.types import RetryPolicy

    opened = ai("", tool_call("unlock", {"door": "back", "pin": PIN}))
    scripts = {
        "fails": [opened, RuntimeError(f"upstream refused pin {PIN}")],
        "waits": [opened, ConnectionError(f"reset while sending pin {PIN}")],  # may pass
    }
    ended = {}
    with caplog.at_level(logging.DEBUG, logger="agentrt"):
        for goal, script in scripts.items():
            with AgentRuntime(
                ScriptedChatModel(script),
                tools=[unlock],
                policy=Policy.allow_all(),
                db=db,
                clock=clock,
                model_retry=RetryPolicy(max_attempts=1),
            ) as rt:
                ended[goal] = rt.start(goal, principal=Principal("alice")).status.value
    assert ended == {"fails": "failed", "waits": "waiting_retry"}
    lines = {r.getMessage(): caplog.handler.format(r) for r in caplog.records}
    assert [line for line in lines.values() if PIN in line] == []
    # The lines are there, masked where they quote it: the message and the traceback.
    [failed] = [text for message, text in lines.items() if message.endswith("failed")]
    assert "RuntimeError: upstream refused pin [REDACTED:field]" in failed
    [waits] = [message for message in lines if "waits to retry" in message]
    assert waits.endswith("may pass: reset while sending pin [REDACTED:field]")
    [stopped] = [text for message, text in lines.items() if "stopped to wait by" in message]
    assert "ConnectionError: reset while sending pin [REDACTED:field]" in stopped


def test_a_failed_or_waiting_runs_error_does_not_show_a_sensitive_argument_it_quotes(
    db: Path, clock: FakeClock
) -> None:
    """The provider's error quotes the pin the run gave ``unlock``: Run.error, as the run
    answers it, the runs row and the checkpoint have it masked with the log's secrets, a
    failed run's reason and a waiting run's alike; the rest of the message stays."""
    from langgraph.types import RetryPolicy

    opened = ai("", tool_call("unlock", {"door": "back", "pin": PIN}))
    scripts = {
        "fails": [opened, RuntimeError(f"upstream refused pin {PIN}")],
        "waits": [opened, ConnectionError(f"reset while sending pin {PIN}")],  # may pass
    }
    errors: dict[str, list[str | None]] = {}
    for goal, script in scripts.items():
        with AgentRuntime(
            ScriptedChatModel(script),
            tools=[unlock],
            policy=Policy.allow_all(),
            db=db,
            clock=clock,
            model_retry=RetryPolicy(max_attempts=1),
        ) as rt:
            run = rt.start(goal, principal=Principal("alice"), thread_id=goal)
            stored = rt.store.get_run(goal)
            errors[goal] = [run.status.value, run.error, rt.get(goal).error]
            errors[goal] += [stored.error if stored else None]
            if goal == "fails":  # a waiting run's checkpoint is not ended: no error there
                checkpoint = rt.graph.get_state({"configurable": {"thread_id": goal}})
                errors[goal] += [checkpoint.values["error"]]
    assert errors == {
        "fails": ["failed"] + ["RuntimeError: upstream refused pin [REDACTED:field]"] * 4,
        "waits": ["waiting_retry"]
        + [
            "waiting to retry: the model provider failed in a way that may pass: "
            "reset while sending pin [REDACTED:field]"
        ]
        * 3,
    }


def test_masking_cuts_its_values_out_of_agentrts_records_made_inside_it_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from agentrt.logs import get_logger, masking

    log = get_logger("agentrt.test_masking")
    with caplog.at_level(logging.INFO, logger="agentrt"):
        with masking([PIN, 73519, True, None, ""]):  # not text nor a number: nothing to cut
            with masking([NEW_PIN]):  # nested: both apply
                try:
                    raise ValueError(f"bad {PIN} and {NEW_PIN}")
                except ValueError as exc:
                    log.error("failed: %s", exc, exc_info=exc)
            log.info("after: %s, %s, 73519, True", PIN, NEW_PIN)
        log.info("outside: %s", PIN)  # not a run's line: its detectors alone
    inside, after, outside = caplog.records
    assert inside.getMessage() == "failed: bad [REDACTED:field] and [REDACTED:field]"
    assert "ValueError: bad [REDACTED:field] and [REDACTED:field]" in str(inside.exc_text)
    assert after.getMessage() == f"after: [REDACTED:field], {NEW_PIN}, [REDACTED:field], True"
    assert outside.getMessage() == f"outside: {PIN}"
    # The values ride on no record: a handler that writes its every attribute never sees
    # them (a JSON formatter), nor one that reads the exception itself.
    for record in (inside, after):
        assert PIN not in repr(vars(record))


def test_a_goal_that_gives_a_sensitive_argument_is_masked_on_the_spans(
    db: Path, clock: FakeClock
) -> None:
    """The goal gives the pin the run then passes to unlock's sensitive field: the run's
    input.value (set as the segment ends) and the first model call's messages (set as the
    call ends, when its answer's tool call says what is secret) show it masked."""
    goal = f"open the front door, its pin is {PIN}"
    model = ScriptedChatModel([ai("", tool_call("unlock", {"door": "front", "pin": PIN})), "ok"])
    with AgentRuntime(
        model,
        tools=[unlock],
        policy=Policy.allow_all(),
        db=db,
        clock=clock,
        capture_content=True,
    ) as rt:
        run = rt.start(goal, principal=Principal("alice"))
    assert run.status == "succeeded", run.error
    with sqlite3.connect(db) as conn:
        spans = conn.execute("SELECT name, status, attributes, events FROM spans").fetchall()
    assert [row[0] for row in spans if PIN in str(row)] == []
    masked = "open the front door, its pin is [REDACTED:field]"
    attrs = {row[0]: json.loads(row[2]) for row in spans}
    assert attrs["invoke_agent agentrt"]["input.value"] == masked
    assert masked in attrs["chat scripted"]["gen_ai.input.messages"]


# field names ---------------------------------------------------------------------------------

SECRET_NAMES = (
    "password_confirmation",
    "password2",
    "passwordHash",
    "new_password",
    "passwords",
    "db_pass",
    "access_key",
    "aws_access_key",
    "accessKey",
    "Proxy-Authorization",
    "proxy_authorization",
    "X-Authorization",
)
PLAIN_NAMES = (
    "passed",
    "pass_rate",
    "passenger",
    "passport",
    "compass_heading",
    "passwordless",
    "access_level",
    "accessed_at",
    "author",
    "authorized",
    "authorization_url",
    "input_tokens",
    "token_count",
)


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_a_field_named_for_a_secret_is_masked(name: str) -> None:
    value = {"user": "alice", name: "hunter2-Zq"}
    assert Redactor().redact(value) == {"user": "alice", name: "[REDACTED:field]"}


@pytest.mark.parametrize("name", PLAIN_NAMES)
def test_a_field_whose_name_only_looks_like_one_is_shown(name: str) -> None:
    assert Redactor().redact({name: "hunter2-Zq"}) == {name: "hunter2-Zq"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("password_confirmation=hunter2-Zq", "password_confirmation=[REDACTED:secret]"),
        ("passwordHash: x9f8e7d6", "passwordHash: [REDACTED:secret]"),
        ("password2: hunter2-Zq ok", "password2: [REDACTED:secret] ok"),
        (
            "Proxy-Authorization: Basic YWxpY2U6aHVudGVyMg==",
            "Proxy-Authorization: Basic [REDACTED:basic_auth]",
        ),
        (
            '{"Authorization": "Basic YWxpY2U6aHVudGVyMg=="} sent',
            '{"Authorization": "Basic [REDACTED:basic_auth]"} sent',
        ),
        ("passwordless: true, token_count=5", None),
        ("Basic training: 6 weeks, basic usage is simple", None),
    ],
)
def test_names_for_secrets_are_found_in_prose(text: str, expected: str | None) -> None:
    assert Redactor().redact_text(text) == (text if expected is None else expected)


# a secret's other spellings ------------------------------------------------------------------

ODD = 'Café"9 Wren\\key+/='  # non-ASCII, a quote, a space, a backslash, URL punctuation
ODD_FORMS = (  # inside a JSON string (no quotes around), in a URL
    json.dumps(ODD)[1:-1],
    json.dumps(ODD, ensure_ascii=False)[1:-1],
    quote(ODD, safe=""),
    quote_plus(ODD),
    json.dumps(ODD)[1:-1].replace("/", "\\/"),  # "/" escaped, as some encoders do
    json.dumps(json.dumps(ODD))[3:-3],  # JSON text inside a JSON string
    re.sub("%[0-9A-F]{2}", lambda m: m.group().lower(), quote(ODD, safe="")),  # "%c3%a9"
    re.sub("%[0-9A-F]{2}", lambda m: m.group().lower(), quote_plus(ODD)),
)


@pytest.mark.parametrize("form", ODD_FORMS)
def test_a_known_or_remembered_secret_is_found_as_json_text_or_a_url_spells_it(
    form: str,
) -> None:
    text = f"GET https://crm.example/v1?body={form} failed"  # not JSON: searched as text
    remembering = Redactor()
    remembering.remember([ODD])
    for cut, marker in (
        (remembering.redact_text(text), "[REDACTED:credential]"),
        (Redactor().redact_text(text, known=[ODD]), "[REDACTED:field]"),
    ):
        assert cut == f"GET https://crm.example/v1?body={marker} failed"
    assert set(ODD_FORMS) <= set(secret_forms(ODD))


def test_a_secret_too_short_to_look_for_is_not_looked_for_in_its_longer_spellings() -> None:
    short = 'é"'  # two characters; "%C3%A9%22" is nine
    text = f"{quote(short, safe='')} {json.dumps(short)} {short}"
    remembering = Redactor()
    remembering.remember([short])
    assert remembering.redact_text(text) == text
    assert Redactor().redact_text(text, known=[short]) == text
    assert secrets_pattern([short]) is None


# keys ----------------------------------------------------------------------------------------

CRED = "crm-Cobalt9Wren-key"


def test_a_secret_used_as_a_key_is_masked_like_a_value() -> None:
    r = Redactor()
    r.remember([CRED])
    value = {
        EMAIL: {"orders": 3},
        CRED: "ok",
        f"orders of {EMAIL}": 2,
        "zebra-58213": 1,
        "password": "pw",
        "n": 4,
    }
    assert r.redact(value, known=["zebra-58213"]) == {
        "[REDACTED:email]": {"orders": 3},
        "[REDACTED:credential]": "ok",
        "orders of [REDACTED:email]": 2,
        "[REDACTED:field]": 1,
        "password": "[REDACTED:field]",
        "n": 4,
    }
    as_json = r.redact_text(json.dumps({CARD: "visa", API_KEY: 1}))
    assert json.loads(as_json) == {"[REDACTED:card]": "visa", "[REDACTED:api_key]": 1}
    assert r.redact({1: "a", None: "b"}) == {"1": "a", "None": "b"}  # not text: as before
    # a name shown before is masked once it is a credential the runtime resolved
    assert r.redact({"pay-Cobalt9Wren": 1}) == {"pay-Cobalt9Wren": 1}
    r.remember(["pay-Cobalt9Wren"])
    assert r.redact({"pay-Cobalt9Wren": 1}) == {"[REDACTED:credential]": 1}


def test_keys_masked_alike_keep_both_values_and_redacting_again_changes_nothing() -> None:
    value = {"a@example.com": 1, "b@example.com": 2, "[REDACTED:email] (2)": 3}
    masked = Redactor().redact(value)
    assert masked == {
        "[REDACTED:email]": 1,
        "[REDACTED:email] (2)": 2,
        "[REDACTED:email] (2) (2)": 3,  # a name already taken: the same rule
    }
    assert Redactor().redact(masked) == masked
    hashed = Redactor(mode="hash").redact(value)
    assert sorted(hashed.values()) == [1, 2, 3]
    assert "a@example.com" not in str(hashed)
    assert Redactor(mode="hash").redact(hashed) == hashed
    # drop: a name with its secret cut out would say nothing, so the field goes
    assert Redactor(mode="drop").redact({"a@example.com": 1, "n": 2}) == {"n": 2}


def test_a_card_number_or_a_known_value_used_as_a_key_of_any_type_is_masked() -> None:
    # A result keyed by card number, before it is JSON: the key is an int.
    assert Redactor().redact({4111111111111111: {"status": "blocked"}}) == {
        "[REDACTED:card]": {"status": "blocked"}
    }
    assert Redactor().redact({58213907: 1, 2: 2}, known=[58213907]) == {
        "[REDACTED:field]": 1,
        "2": 2,
    }
    assert Redactor(mode="drop").redact({4111111111111111: "visa", 7: "x"}) == {"7": "x"}


# time ----------------------------------------------------------------------------------------

CRAFTED = {  # texts made to hold a detector: each took seconds, on every surface showing it
    "jwt": "eyJ-" * 32_000,  # each "eyJ" began a token read to the end: 128 KB, 5 s
    "aws-name-then-spaces": "aws secret" + " " * 3_000,  # spaces shared three ways: 9 s
    "aws-name-then-tabs": "aws secret" + "\t" * 10_000,  # shared two ways: 5 s
    "forty-character-words": (("Ab1" * 14)[:40] + " ") * 1_200,  # each read the text: 5 s
}


@pytest.mark.parametrize("name", list(CRAFTED))
def test_masking_a_crafted_text_takes_time_linear_in_its_length(name: str) -> None:
    crafted = CRAFTED[name]
    plain = ("word " * len(crafted))[: len(crafted)]
    redactor = Redactor()
    took = []
    for text in (plain, crafted):
        started = time.perf_counter()
        redactor.redact_text(text)
        took.append(time.perf_counter() - started)
    # Generous: the crafted texts take about what plain text does, milliseconds.
    assert took[1] < max(1.0, 20 * took[0]), f"{len(crafted):,} characters took {took[1]:.2f}s"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            f"AWS_SECRET_ACCESS_KEY={AWS_KEY}",
            "AWS_SECRET_ACCESS_KEY=[REDACTED:aws_secret]",
        ),
        (
            f'aws_secret_access_key: "{AWS_KEY}"',
            'aws_secret_access_key: "[REDACTED:aws_secret]"',
        ),
        (
            f"aws secret access key  =\t{AWS_KEY} ok",
            "aws secret access key  =\t[REDACTED:aws_secret] ok",
        ),
        (f"aws secret key   {AWS_KEY}", "aws secret key   [REDACTED:aws_secret]"),
        (f"token={JWT}; again: '{JWT}'", "token=[REDACTED:jwt]; again: '[REDACTED:jwt]'"),
        ("eyJ-" * 50, None),
    ],
)
def test_the_detectors_made_linear_find_what_they_found(text: str, expected: str | None) -> None:
    assert Redactor().redact_text(text) == (text if expected is None else expected)
