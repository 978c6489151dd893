"""A credential stays out of what a run keeps, however a tool lets it slip: in a preview
object whose repr hides the field, in what it writes to memory, or as a value too short
to be found again (refused before the call)."""

from __future__ import annotations

import json
import logging
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote as url_quote
from urllib.parse import quote_plus

import pytest

from agentrt import AgentRuntime, Decision, Policy, Principal, RunStatus, ToolContext, tool
from agentrt.logs import get_logger
from agentrt.redaction import MIN_KNOWN, Redactor
from agentrt.testing import ScriptedChatModel, ai, tool_call
from agentrt.tools.credentials import CREDENTIAL_MARKER, Credentials, Secrets
from agentrt.tools.memory_tools import memory_tools

ALICE = Principal("alice", roles=["support"], tenant="acme")
PAY_KEY = "pay-acme-Cobalt9Wren"

POLICY = """
version: 1
name: pay
default: allow
credentials:
  pay:
    roles: [support]
"""


@dataclass
class Quote:
    """What the payment system quotes, with the authorisation it was quoted under (a
    field its repr hides, as a careless client library would)."""

    amount: int
    auth: str = field(repr=False)


def quote(cents: int, ctx: ToolContext) -> Quote:
    return Quote(amount=cents, auth=ctx.credentials["pay"])


@tool(effect="irreversible", prepare=quote, credentials=["pay"])
def pay(cents: int, ctx: ToolContext) -> dict[str, Any]:
    """Pay a supplier."""
    return {"paid": cents}


def keys(value: str) -> Credentials:
    return Credentials.from_callable(lambda name, principal: value)


def checkpoints_text(rt: AgentRuntime, thread_id: str) -> str:
    """Every checkpoint of the thread, decoded (the SQLite file keeps them deflated)."""
    config = {"configurable": {"thread_id": thread_id}}
    return "\n".join(
        json.dumps(snapshot.values, default=repr) for snapshot in rt.graph.get_state_history(config)
    )


def test_a_preview_field_the_repr_hides_is_scrubbed_from_every_checkpoint(db: Path) -> None:
    script = [ai("", tool_call("pay", {"cents": 700})), "Paid."]
    with AgentRuntime(
        ScriptedChatModel(script),
        tools=[pay],
        policy=Policy.from_yaml(
            POLICY + "rules:\n  - {id: ask, match: {tools: [pay]}, decision: require_approval}\n"
        ),
        db=db,
        credentials=keys(PAY_KEY),
    ) as rt:
        run = rt.start("Pay 7.", principal=ALICE)
        assert run.status is RunStatus.AWAITING_APPROVAL
        assert run.pending_approval is not None
        bob = Principal("bob", tenant="acme")
        done = rt.decide(Decision.approve(run.pending_approval.id, by=bob))
        assert done.status is RunStatus.SUCCEEDED
        kept = checkpoints_text(rt, run.thread_id)
        assert '"amount": 700' in kept  # the preview is there...
        assert CREDENTIAL_MARKER in kept  # ...with its hidden field cut out
        assert PAY_KEY not in kept
        assert PAY_KEY not in json.dumps([e["data"] for e in rt.events(run.thread_id)])


def test_a_credential_a_tool_writes_to_memory_is_cut_out(db: Path) -> None:
    @tool(effect="write", idempotent=True, credentials=["pay"])
    def note_payee(payee: str, ctx: ToolContext) -> str:
        """Remember a payee (carelessly, with the key it was checked under)."""
        ctx.memory.put("payees", payee, {"checked_with": ctx.credentials["pay"]})
        return "noted"

    get_payee = memory_tools()[1]
    script = [
        ai("", tool_call("note_payee", {"payee": "p1"})),
        ai("", tool_call("memory_get", {"namespace": "payees", "key": "p1"})),
        "Done.",
    ]
    with AgentRuntime(
        ScriptedChatModel(script),
        tools=[note_payee, get_payee],
        policy=Policy.from_yaml(POLICY),
        db=db,
        credentials=keys(PAY_KEY),
    ) as rt:
        run = rt.start("Note p1.", principal=ALICE)
        assert run.status is RunStatus.SUCCEEDED
        item = rt.memory("acme").get("payees", "p1")
        assert item is not None
        assert item.value == {"checked_with": CREDENTIAL_MARKER}
        observed = [e["data"] for e in rt.events(run.thread_id) if e["type"] == "observation"]
        assert CREDENTIAL_MARKER in observed[1]["content"]
        assert PAY_KEY not in checkpoints_text(rt, run.thread_id)
    with sqlite3.connect(db) as conn:
        assert PAY_KEY not in repr(conn.execute("SELECT * FROM store").fetchall())


@pytest.mark.parametrize("value", ["a", "ab", "abc"])
def test_a_credential_too_short_to_mask_is_refused_naming_it_not_its_value(
    db: Path, value: str
) -> None:
    calls: list[str] = []

    @tool(credentials=["pay"])
    def balance(ctx: ToolContext) -> str:
        """The account's balance."""
        calls.append(ctx.credentials["pay"])
        return "abacus cabbage: 100"

    script = [ai("", tool_call("balance", {})), "Done."]
    with AgentRuntime(
        ScriptedChatModel(script),
        tools=[balance],
        policy=Policy.from_yaml(POLICY),
        db=db,
        credentials=keys(value),
    ) as rt:
        run = rt.start("Balance?", principal=ALICE)
        (seen,) = [e["data"] for e in rt.events(run.thread_id) if e["type"] == "observation"]
    assert calls == []
    assert seen["content"] == (
        "permanent error: credential 'pay' for tool 'balance' could not be resolved for "
        f"principal 'alice' of tenant 'acme': its value in a callable is {len(value)} "
        f"characters, shorter than {MIN_KNOWN}, so it could not be kept out of what the run "
        "shows; give the real secret; the tool was not called"
    )


def test_short_values_cut_up_no_other_text() -> None:
    text = "abacus cabbage 1234"
    assert Secrets({"pay": "ab", "pin": "1"}).scrub(text) == text
    redactor = Redactor()
    redactor.remember(["ab", "1"])
    assert redactor.redact(text) == text
    redactor.remember(["cabbage"])
    assert redactor.redact(text) == "abacus [REDACTED:credential] 1234"


# a credential whose characters JSON escapes, and its other spellings ------------------------

ODD_KEYS = ("pay-Café9Wren", 'pay-"Cobalt"9', "pay-Co\\balt9")


@pytest.mark.parametrize("key", ODD_KEYS)
def test_an_object_holding_a_credential_json_would_escape_is_scrubbed(key: str) -> None:
    secrets = Secrets({"pay": key})
    assert secrets.scrub(Quote(700, key)) == {"amount": 700, "auth": CREDENTIAL_MARKER}
    assert secrets.scrub([Quote(1, f"{key}!")]) == [{"amount": 1, "auth": "[REDACTED:credential]!"}]
    clean = Quote(700, "someone else's")
    assert secrets.scrub(clean) is clean  # nothing to cut: the object as it was


def test_a_non_ascii_credential_in_a_returned_object_never_reaches_the_model_or_the_log(
    db: Path,
) -> None:
    key = "pay-Café9Wren-key"

    @tool(effect="read", credentials=["pay"])
    def open_quote(cents: int, ctx: ToolContext):  # no return type: kept as the object
        """Quote a payment (the client's object, key included)."""
        return Quote(cents, ctx.credentials["pay"])

    model = ScriptedChatModel([ai("", tool_call("open_quote", {"cents": 5})), "Quoted."])
    with AgentRuntime(
        model, tools=[open_quote], policy=Policy.from_yaml(POLICY), db=db, credentials=keys(key)
    ) as rt:
        run = rt.start("Quote 5.", principal=ALICE)
        assert run.status is RunStatus.SUCCEEDED
        told = [str(m.content) for m in model.calls[-1].messages if m.type == "tool"]
        logged = json.dumps([e["data"] for e in rt.events(run.thread_id)], ensure_ascii=False)
        kept = checkpoints_text(rt, run.thread_id)
    assert CREDENTIAL_MARKER in told[0]
    escaped = json.dumps(key)[1:-1]
    for text in (*told, logged, kept, run.output or ""):
        assert key not in text
        assert escaped not in text


ODD_KEY = 'Cob"alt9 Wren/Key==é\\'  # a quote, a space, URL punctuation, é, a backslash
ODD_SPELLINGS = {  # how: (text a tool gives back, the credential as it is spelled in it)
    "json": json.dumps(ODD_KEY)[1:-1],
    "json, non-ASCII kept": json.dumps(ODD_KEY, ensure_ascii=False)[1:-1],
    "url": url_quote(ODD_KEY, safe=""),
    "form": quote_plus(ODD_KEY),
}


@pytest.mark.parametrize("how", list(ODD_SPELLINGS))
def test_a_credential_in_json_text_or_a_url_is_cut_out(how: str) -> None:
    spelled = ODD_SPELLINGS[how]
    for text in (f'{{"echo": "{spelled}"}}', f"401 for url https://pay.example/v1?key={spelled}"):
        assert Secrets({"pay": ODD_KEY}).scrub(text) == text.replace(spelled, CREDENTIAL_MARKER)
        # too short to be looked for as it is: not looked for in a longer spelling either
        assert Secrets({"pay": "é\\"}).scrub(text) == text


def test_a_credential_in_a_tools_error_url_never_reaches_the_model(db: Path) -> None:
    key = "pay key/Cobalt+9=="

    @tool(effect="read", credentials=["pay"])
    def balance(ctx: ToolContext) -> str:
        """The account's balance."""
        raise ValueError(
            f"401 for url https://pay.example/v1?key={quote_plus(ctx.credentials['pay'])}"
        )

    model = ScriptedChatModel([ai("", tool_call("balance", {})), "No."])
    with AgentRuntime(
        model, tools=[balance], policy=Policy.from_yaml(POLICY), db=db, credentials=keys(key)
    ) as rt:
        run = rt.start("Balance?", principal=ALICE)
        (seen,) = [e["data"] for e in rt.events(run.thread_id) if e["type"] == "observation"]
    assert seen["content"].endswith(f"401 for url https://pay.example/v1?key={CREDENTIAL_MARKER}")
    assert quote_plus(key) not in str([m.content for m in model.calls[-1].messages])


def test_credentials_as_keys_cut_to_one_marker_keep_both_values() -> None:
    secrets = Secrets({"a": "pay-Cobalt9Wren", "b": "crm-Cobalt9Wren"})
    assert secrets.scrub({"pay-Cobalt9Wren": 1, "crm-Cobalt9Wren": 2, "n": 3}) == {
        CREDENTIAL_MARKER: 1,
        f"{CREDENTIAL_MARKER} (2)": 2,
        "n": 3,
    }


def test_a_credential_in_a_memory_key_or_namespace_is_refused_to_the_tool(db: Path) -> None:
    """Refused, not cut out: a key cut to the marker is not the one asked for later, and
    two credentials cut alike would share one item."""
    wrote: list[str] = []

    @tool(effect="write", idempotent=True, credentials=["pay"])
    def cache_session(where: str, ctx: ToolContext) -> str:
        """Cache the session under a name made from its key (carelessly)."""
        key = ctx.credentials["pay"]
        namespace, item = {
            "key": ("sessions", f"s-{key}"),
            "label": (f"by-key/{key}", "s"),
            "url label": (("by-key", f"k={quote_plus(key)}"), "s"),
            "fine": ("sessions", "s-1"),
        }[where]
        ctx.memory.put(namespace, item, {"ok": True})
        wrote.append(where)
        return "cached"

    places = ["key", "label", "url label", "fine"]
    script = [ai("", tool_call("cache_session", {"where": w})) for w in places]
    with AgentRuntime(
        ScriptedChatModel([*script, "Done."]),
        tools=[cache_session],
        policy=Policy.from_yaml(POLICY),
        db=db,
        credentials=keys("pay key/Cobalt+9=="),
    ) as rt:
        run = rt.start("Cache it.", principal=ALICE)
        observed = [e["data"] for e in rt.events(run.thread_id) if e["type"] == "observation"]
        kept = rt.memory("acme").search(limit=10)
    assert wrote == ["fine"]
    assert [(o["kind"], o["content"]) for o in observed] == [
        (
            "permanent",
            f"permanent error: the memory {what} {shown!r} holds the value of credential 'pay'; "
            "keys and namespaces are kept and shown as they are, so name the item by "
            "something that is not secret (a customer id)",
        )
        for what, shown in (
            ("key", f"s-{CREDENTIAL_MARKER}"),
            ("namespace", f"by-key/{CREDENTIAL_MARKER}"),
            ("namespace", f"by-key/k={CREDENTIAL_MARKER}"),
        )
    ] + [("ok", "cached")]
    assert [(item.namespace, item.key) for item in kept] == [(("sessions",), "s-1")]
    with sqlite3.connect(db) as conn:
        stored = repr(conn.execute("SELECT * FROM store").fetchall())
    assert "Cobalt" not in stored


def test_a_credential_in_an_artifact_name_is_refused_to_the_tool(db: Path) -> None:
    @tool(credentials=["pay"])
    def export(named: str, ctx: ToolContext) -> Any:
        """Export under a name made from the key (carelessly)."""
        key = ctx.credentials["pay"]
        name = {"key": f"export-{key}.csv", "fine": "export.csv"}[named]
        return ctx.artifacts.put(name, "a,b\n")

    script = [ai("", tool_call("export", {"named": n})) for n in ("key", "fine")]
    with AgentRuntime(
        ScriptedChatModel([*script, "Done."]),
        tools=[export],
        policy=Policy.from_yaml(POLICY),
        db=db,
        credentials=keys(PAY_KEY),
    ) as rt:
        run = rt.start("Export.", principal=ALICE)
        observed = [e["data"] for e in rt.events(run.thread_id) if e["type"] == "observation"]
        names = [ref.name for ref in rt.artifacts(run.thread_id)]
    assert (observed[0]["kind"], observed[0]["content"]) == (
        "permanent",
        f"permanent error: artifact name 'export-{CREDENTIAL_MARKER}.csv' holds the value of "
        "credential 'pay'; a name is kept and shown as it is (listings, URLs, files written "
        "out), so name the artifact by something that is not secret (export.csv)",
    )
    assert observed[1]["kind"] == "ok"
    assert names == ["export.csv"]
    with sqlite3.connect(db) as conn:
        assert PAY_KEY not in repr(conn.execute("SELECT * FROM artifacts").fetchall())


def test_secrets_name_the_credentials_a_text_holds_in_any_spelling() -> None:
    secrets = Secrets({"pay": ODD_KEY, "crm": "crm-acme-Quill7Harbor"})
    for spelled in ODD_SPELLINGS.values():
        assert secrets.held_in(f"x-{spelled}-y") == ["pay"]
    assert secrets.held_in("crm-acme-Quill7Harbor/pay") == ["crm"]
    assert secrets.held_in("nothing secret") == []
    assert Secrets({"pay": "ab"}).held_in("ab-ab") == []  # too short to be looked for


# a credential an error quotes with repr -----------------------------------------------------

QUOTED_KEY = "pay-Kx7'q\"Zp2-Rw9"  # both kinds of quote: repr escapes "'", JSON escapes '"'
ONE_QUOTE_KEY = "pay-Kx7'qZp2-Rw9"  # repr leaves its "'" as it is, unless the text is longer
REPR_SPELLINGS = {  # how: the text a tool raises or logs
    "repr": f"the CRM refused api key {QUOTED_KEY!r}",
    "ascii": f"refused {QUOTED_KEY + 'é'!a}",
    "a KeyError": str(KeyError(QUOTED_KEY)),
    "repr of a text quoting it with repr": str(KeyError(f"no account for {QUOTED_KEY!r}")),
    "one quote, in a longer text's repr": repr(f'key "{ONE_QUOTE_KEY}" refused'),
    "repr, in a JSON body": json.dumps({"error": f"refused {QUOTED_KEY!r}"}),
}


@pytest.mark.parametrize("how", list(REPR_SPELLINGS))
def test_a_credential_quoted_with_repr_is_cut_out(how: str) -> None:
    text = REPR_SPELLINGS[how]
    secrets = Secrets({"pay": QUOTED_KEY, "crm": ONE_QUOTE_KEY})
    remembering = Redactor()
    remembering.remember([QUOTED_KEY, ONE_QUOTE_KEY])
    for cut in (secrets.scrub(text), remembering.redact_text(text)):
        assert CREDENTIAL_MARKER in cut
        assert "Zp2-Rw9" not in cut, cut
    assert secrets.held_in(text) == (["crm"] if "one quote" in how else ["pay"])


def test_a_credential_a_tools_error_quotes_with_repr_reaches_neither_the_model_nor_the_log(
    db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    @tool(effect="read", credentials=["pay"])
    def balance(ctx: ToolContext) -> str:
        """The account's balance."""
        key = ctx.credentials["pay"]
        get_logger("agentrt.tests.pay").warning("calling with %r", key)
        raise PermissionError(f"the payment system refused api key {key!r}")

    model = ScriptedChatModel([ai("", tool_call("balance", {})), "No."])
    with (
        caplog.at_level(logging.WARNING, logger="agentrt.tests.pay"),
        AgentRuntime(
            model,
            tools=[balance],
            policy=Policy.from_yaml(POLICY),
            db=db,
            credentials=keys(QUOTED_KEY),
        ) as rt,
    ):
        run = rt.start("Balance?", principal=ALICE)
        assert run.status is RunStatus.SUCCEEDED
        (seen,) = [e["data"] for e in rt.events(run.thread_id) if e["type"] == "observation"]
    assert seen["content"] == (
        f"permanent error: PermissionError: the payment system refused api key "
        f"'{CREDENTIAL_MARKER}'"
    )
    told = str([m.content for m in model.calls[-1].messages])
    logged = [r.getMessage() for r in caplog.records if r.name == "agentrt.tests.pay"]
    assert "Zp2-Rw9" not in told
    assert logged == [f"calling with '{CREDENTIAL_MARKER}'"]
