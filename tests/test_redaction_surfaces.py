"""One masking path (agentrt.tracing.shown) for every place content is shown: each finding
of the review of redaction, one test each. tests/test_secrets_walk.py walks them all."""

from __future__ import annotations

import ast
import html
import json
import logging
import math
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from typer.testing import CliRunner

from agentrt import AgentRuntime, Decision, Policy, Principal, RunStatus, tool
from agentrt.approvals.display import unmasked
from agentrt.cli import app as cli_app
from agentrt.logs import get_logger
from agentrt.redaction import MAX_DEPTH, iban_valid
from agentrt.service import create_app, issue_key
from agentrt.testing import ScriptedChatModel, ai, tool_call
from agentrt.tracing import Redactor
from agentrt.tracing import attributes as A
from agentrt.tracing.shown import shown_events
from tests import secrets_app as S
from tests.test_service import parse_sse

ROOT = Path(__file__).resolve().parent.parent
PIN = "zebra-58213-quartz"  # no detector knows it: only unlock's declaration makes it secret
ALICE = Principal("alice", tenant="acme")


@tool(effect="read", sensitive=["pin"])
def unlock(door: str, pin: str) -> dict[str, Any]:
    """Unlock a door; the result echoes the pin, as a careless API would."""
    if door == "back":
        raise ValueError(f"door {door!r} refused pin {pin}; the password: hunter2-x9 is stale")
    return {"door": door, "pin": pin}


def traced(
    db: Path, model: ScriptedChatModel, **kw: Any
) -> tuple[AgentRuntime, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    rt = AgentRuntime(
        model, tools=[unlock], policy=Policy.allow_all(), db=db, tracing=provider, **kw
    )
    return rt, exporter


def everything(spans: tuple[ReadableSpan, ...]) -> str:
    """Every attribute, event and status of every span, as text."""
    return "\n".join(
        f"{s.name} {dict(s.attributes or {})} {s.status.description} "
        + " ".join(f"{e.name} {dict(e.attributes or {})}" for e in s.events)
        for s in spans
    )


# (a) ----------------------------------------------------------------------------------------


def test_llm_call_messages_mask_tool_calls_and_results_by_their_tools_fields(db: Path) -> None:
    model = ScriptedChatModel([ai("", tool_call("unlock", {"door": "front", "pin": PIN})), "ok"])
    rt, exporter = traced(db, model, capture_content=True)
    with rt:
        assert rt.start("open the front door", principal=ALICE).status == "succeeded"
    spans = exporter.get_finished_spans()
    llm = [s for s in spans if (s.attributes or {})[A.SPAN_KIND] == A.LLM_CALL]
    sent = json.loads(str((llm[-1].attributes or {})[A.GEN_AI_INPUT_MESSAGES]))
    (call,) = sent[1]["parts"]
    assert call["arguments"] == {"door": "front", "pin": "[REDACTED:field]"}
    (result,) = sent[2]["parts"]
    assert json.loads(result["response"]) == {"door": "front", "pin": "[REDACTED:field]"}
    answered = str((llm[0].attributes or {})[A.GEN_AI_OUTPUT_MESSAGES])
    assert '"pin": "[REDACTED:field]"' in answered
    assert PIN not in everything(spans)


# (b) ----------------------------------------------------------------------------------------


def test_a_tool_error_on_its_span_is_masked_with_capture_off(db: Path) -> None:
    model = ScriptedChatModel([ai("", tool_call("unlock", {"door": "back", "pin": PIN})), "no"])
    rt, exporter = traced(db, model)
    with rt:
        rt.start("open the back door", principal=ALICE)
    spans = exporter.get_finished_spans()
    (call,) = [s for s in spans if (s.attributes or {})[A.SPAN_KIND] == A.TOOL_CALL]
    (event,) = call.events
    assert dict(event.attributes or {})["exception.message"] == (
        "ValueError: door 'back' refused pin [REDACTED:field]; "
        "the password: [REDACTED:secret] is stale"
    )
    assert (
        call.status.description
        == f"ToolFailure: {dict(event.attributes or {})['exception.message']}"
    )
    text = everything(spans)
    assert PIN not in text
    assert "hunter2-x9" not in text
    assert not A.CONTENT_KEYS & {k for s in spans for k in (s.attributes or {})}


@pytest.mark.parametrize(
    "pin",
    ["zebra-58213-quartz-marble-77120-otter-lantern-99341-copper", "zebra\\58213\\quartz"],
    ids=["longer-than-a-quote", "escaped-by-repr"],
)
def test_an_invalid_args_error_shows_no_part_of_a_sensitive_argument(db: Path, pin: str) -> None:
    # The model leaves out the required door: the error quotes the arguments, pin included.
    model = ScriptedChatModel([ai("", tool_call("unlock", {"pin": pin})), "gave up"])
    rt, exporter = traced(db, model, capture_content=True)
    with rt:
        run = rt.start("open the door", principal=ALICE)
        log = rt.events(run.thread_id)
        shown = json.dumps(shown_events(log, rt.redactor, rt.tools.sensitive_of))
    (invalid,) = [e for e in log if e["data"].get("kind") == "invalid_args"]
    assert "door: Field required (got {'pin': '[REDACTED:field]'})" in invalid["data"]["content"]
    for text in (invalid["data"]["content"], shown, everything(exporter.get_finished_spans())):
        assert "58213" not in text


# (c) ----------------------------------------------------------------------------------------


@pytest.fixture
def settled(db: Path) -> Iterator[tuple[AgentRuntime, str]]:
    """The secrets app's run, approved and finished."""
    rt = S.build_runtime(db)
    run = rt.start(S.GOAL, principal=S.OPERATOR)
    assert run.pending_approval is not None
    run = rt.decide(Decision.approve(run.pending_approval.id, by=S.APPROVER, reason=S.COMMENT))
    assert run.status == "succeeded"
    yield rt, run.thread_id
    rt.close()


@pytest.mark.anyio
async def test_results_and_errors_are_masked_on_the_run_page_the_stream_and_show(
    settled: tuple[AgentRuntime, str], db: Path
) -> None:
    rt, thread_id = settled
    app = create_app(rt, sweep_every=None, rate_limit="10000/minute")
    key = issue_key(rt, S.APPROVER)
    base = "http://agentrt.test"
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=base, headers={"Origin": base}
        ) as http,
    ):
        stream = await http.get(
            f"/runs/{thread_id}/events", headers={"Authorization": f"Bearer {key}"}
        )
        await http.post("/ui/login", data={"key": key})
        page = (await http.get(f"/ui/runs/{thread_id}")).text
    shown = CliRunner().invoke(
        cli_app, ["show", thread_id, "--app", "tests.secrets_app:build_runtime", "--db", str(db)]
    )
    assert shown.exit_code == 0, shown.output
    observations = [json.loads(e["data"]) for e in parse_sse(stream.text)]
    results = [o["data"]["content"] for o in observations if o.get("type") == "observation"]
    assert '"accessToken": "[REDACTED:field]"' in results[0]  # inside the JSON text
    assert "refused pin [REDACTED:field]; ask ops with [REDACTED:api_key]" in results[1]
    page = html.unescape(page)
    assert '"accessToken": "[REDACTED:field]"' in page
    assert "refused pin [REDACTED:field]" in page
    assert 'plan #1: transfer({"iban": "[REDACTED:iban]", ' in shown.output
    for text in (stream.text, page, shown.output):
        for secret in (S.ACCESS_TOKEN, S.PIN, S.IBAN, S.PASSWORD, S.GITHUB_PAT, S.JWT):
            assert secret not in text


def pin_desk(db: str | Path = "pin.db", **kwargs: Any) -> AgentRuntime:
    """A thread whose answers repeat the pin its tool was given (the CLI builds it by --app)."""
    model = ScriptedChatModel(
        [
            ai("", tool_call("unlock", {"door": "front", "pin": PIN})),
            f"Opened the front door with {PIN}.",
            f"Yes, it was {PIN}.",
        ]
    )
    return AgentRuntime(model, tools=[unlock], policy=Policy.allow_all(), db=db, **kwargs)


@asynccontextmanager
async def served(rt: AgentRuntime) -> AsyncIterator[tuple[Any, httpx.AsyncClient, str]]:
    """The service app of ``rt`` running, a client holding ALICE's key, and the key."""
    app = create_app(rt, poll_interval=0.01, sweep_every=None, rate_limit="10000/minute")
    key = issue_key(rt, ALICE)
    base = "http://agentrt.test"
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url=base,
            headers={"Origin": base, "Authorization": f"Bearer {key}"},
        ) as http,
    ):
        yield app, http, key


@pytest.mark.anyio
async def test_a_sensitive_argument_an_answer_repeats_is_masked_wherever_a_run_is_shown(
    db: Path,
) -> None:
    rt = pin_desk(db)
    thread_id = rt.start("open the front door", principal=ALICE).thread_id
    seen: dict[str, str] = {}
    async with served(rt) as (app, http, key):
        path = f"/runs/{thread_id}"
        stream = parse_sse((await http.get(f"{path}/events")).text)
        seen["the event stream's status"] = str([e for e in stream if e["event"] == "status"])
        said = {"message": f"was it {PIN}?"}  # the person repeats it too
        seen["POST /runs/{id}/messages"] = (await http.post(f"{path}/messages", json=said)).text
        await app.state.agentrt.worker.wait(thread_id)
        for surface in ("", "/messages", "/join"):
            seen[f"GET /runs/{{id}}{surface}"] = (await http.get(f"{path}{surface}")).text
        seen["GET /runs"] = (await http.get("/runs")).text
        await http.post("/ui/login", data={"key": key})
        seen["the run page"] = html.unescape((await http.get(f"/ui{path}")).text)
    rt.close()
    shown = CliRunner().invoke(
        cli_app, ["show", thread_id, "--app", f"{__name__}:pin_desk", "--db", str(db)]
    )
    assert shown.exit_code == 0, shown.output
    seen["agentrt show"] = shown.output
    assert {where: PIN in text for where, text in seen.items()} == dict.fromkeys(seen, False)
    # Masked where it stood, as the run's log masks it.
    run = json.loads(seen["GET /runs/{id}"])
    assert run["output"] == "Yes, it was [REDACTED:field]."
    messages = json.loads(seen["GET /runs/{id}/messages"])["messages"]
    assert [(m["text"], m["output"]) for m in messages] == [
        ("open the front door", "Opened the front door with [REDACTED:field]."),
        ("was it [REDACTED:field]?", "Yes, it was [REDACTED:field]."),
    ]
    assert "Opened the front door with [REDACTED:field]." in seen["the event stream's status"]


@pytest.mark.anyio
async def test_a_run_polled_reads_its_log_for_what_to_mask_once_per_move(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A monitor polls a run many times a second: its log is read at most once for each
    # state of its row, and again once the run moves (a follow-up's answer masked with
    # what is new). Here never: the runtime that drove the run kept what each of its
    # segments ended with (a server apart from it reads: tests/test_service_ui.py).
    rt = pin_desk(db)
    thread_id = rt.start("open the front door", principal=ALICE).thread_id
    reads: list[str] = []
    events = rt.events

    def counted(tid: str, *args: Any, **kwargs: Any) -> Any:
        reads.append(tid)
        return events(tid, *args, **kwargs)

    monkeypatch.setattr(rt, "events", counted)
    async with served(rt) as (app, http, _):
        path = f"/runs/{thread_id}"
        polled = [(await http.get(path)).json()["output"] for _ in range(5)]
        assert reads == []
        assert polled == ["Opened the front door with [REDACTED:field]."] * 5
        await http.post(f"{path}/messages", json={"message": "and again?"})
        await app.state.agentrt.worker.wait(thread_id)
        again = (await http.get(path)).json()["output"]
    assert again == "Yes, it was [REDACTED:field]."
    assert PIN not in again
    assert reads == []  # what the follow-up's segment ended with, kept as it ended


DOORS = """
version: 1
name: doors
default: allow
rules:
  - id: doors
    match: {tools: [unlock]}
    decision: require_approval
    reason: A door needs a person.
"""


@pytest.mark.anyio
async def test_a_goal_that_holds_a_sensitive_argument_is_masked_in_every_list_of_runs(
    db: Path,
) -> None:
    model = ScriptedChatModel([ai("", tool_call("unlock", {"door": "front", "pin": PIN}))])
    rt = AgentRuntime(model, tools=[unlock], policy=Policy.from_yaml(DOORS), db=db)
    run = rt.start(f"open the front door, its pin is {PIN}", principal=ALICE)
    assert run.status == "awaiting_approval"
    seen: dict[str, str] = {}
    async with served(rt) as (_, http, key):
        seen["GET /runs"] = (await http.get("/runs")).text
        await http.post("/ui/login", data={"key": key})
        for where, path in (("the review queue", "/ui"), ("the runs page", "/ui/runs")):
            seen[where] = html.unescape((await http.get(path)).text)
        seen["the run page"] = html.unescape((await http.get(f"/ui/runs/{run.thread_id}")).text)
    rt.close()
    # The log holds the pin (unlock's sensitive argument): every list masks it in the goal,
    # as the run's own page does; the Redactor alone knows nothing of it.
    assert {where: PIN in text for where, text in seen.items()} == dict.fromkeys(seen, False)
    for text in seen.values():
        assert "open the front door, its pin is [REDACTED:field]" in text


@tool(effect="read", sensitive=["pin"])
def dial(door: str, pin: int) -> str:
    """Open a door by its keypad: the pin is a number."""
    return f"door {door} open"


@tool(effect="read", sensitive=["weight"])
def weigh(crate: str, weight: float) -> str:
    """Check a crate against its weight, which is kept secret."""
    return f"crate {crate} checked"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("called", "answer", "masked"),
    [
        (tool_call("dial", {"door": "front", "pin": 4471}), "The pin is 4471.", "The pin is ?."),
        (
            tool_call("weigh", {"crate": "c1", "weight": 4471.25}),
            "It weighs 4471.25 kg.",
            "It weighs ? kg.",
        ),
        (
            tool_call("weigh", {"crate": "c1", "weight": 4471.0}),
            "It weighs 4471.0 kg, 4471 kg rounded.",
            "It weighs ? kg, ? kg rounded.",
        ),
    ],
    ids=["int", "float", "whole-float"],
)
async def test_a_sensitive_number_an_answer_repeats_as_text_is_masked(
    db: Path, called: dict[str, Any], answer: str, masked: str
) -> None:
    model = ScriptedChatModel([ai("", called), answer])
    rt = AgentRuntime(model, tools=[dial, weigh], policy=Policy.allow_all(), db=db)
    run = rt.start("open up", principal=ALICE)
    assert run.status == "succeeded"
    assert rt.get(run.thread_id).output == answer  # what the run holds, never masked
    assert rt.log_secrets(run.thread_id) == list(called["args"].values())[1:]
    shown = masked.replace("?", "[REDACTED:field]")
    async with served(rt) as (_, http, _key):
        path = f"/runs/{run.thread_id}"
        got = (await http.get(path)).json()
        listed = (await http.get("/runs")).json()
        stream = (await http.get(f"{path}/events")).text
    rt.close()
    assert got["output"] == shown
    assert [r["output"] for r in listed["runs"]] == [shown]
    assert shown in stream
    assert answer not in stream


def test_a_sensitive_number_too_short_to_look_for_masks_no_digit_of_other_text() -> None:
    # A sensitive 0, 1 or True would otherwise cut every such digit out of every text shown.
    text = "0 of 1 crates at 7 kg, -12 C and 2.5 m, 100 doors in 2017, 1000.5 km"
    small = [0, 1, True, False, 7, -12, 2.5, 100.0, 1.5e-07, math.nan, -math.inf, None]
    assert Redactor().redact({"note": text}, known=small) == {"note": text}
    long = [2017, 1000.5]
    assert Redactor().redact({"note": text}, known=long) == {
        "note": "0 of 1 crates at 7 kg, -12 C and 2.5 m, 100 doors in [REDACTED:field], "
        "[REDACTED:field] km"
    }


# (d) ----------------------------------------------------------------------------------------


def test_every_agentrt_logger_is_redacted_once_whenever_it_was_made(
    db: Path, caplog: pytest.LogCaptureFixture
) -> None:
    before = logging.getLogger("agentrt.plugin.before")  # plain logging, before any runtime
    runtimes = [S.build_runtime(db), S.build_runtime(db)]
    after = get_logger("agentrt.plugin.after")  # made after them
    service = logging.getLogger("agentrt.service")
    with caplog.at_level(logging.DEBUG):
        service.error("driving run %r failed: card %s", "t1", S.CARD)
        before.warning("key %s", S.OPENAI_KEY)
        after.info("token: %s", S.COMMENT_TOKEN)
        try:
            try:
                raise KeyError(S.EMAIL)
            except KeyError as cause:
                raise RuntimeError("store refused the write") from cause
        except RuntimeError:
            service.exception("GET /runs failed")
    for rt in runtimes:
        rt.close()
    assert "driving run 't1' failed: card [REDACTED:card]" in caplog.text
    assert "key [REDACTED:api_key]" in caplog.text
    assert "token: [REDACTED:secret]" in caplog.text
    assert "KeyError: '[REDACTED:email]'" in caplog.text  # the cause, in the traceback
    assert "raise RuntimeError" in caplog.text  # whose frames are kept
    for secret in (S.CARD, S.OPENAI_KEY, S.COMMENT_TOKEN, S.EMAIL):
        assert secret not in caplog.text
    for logger in (before, after, service, logging.getLogger("agentrt")):
        assert len(logger.filters) == 1, logger.name  # one filter, however many runtimes


def test_agentrt_makes_its_loggers_with_get_logger_only() -> None:
    """A logger made with plain logging.getLogger after a runtime starts would be missed."""
    found = []
    for path in (ROOT / "agentrt").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Attribute)
                and node.attr == "getLogger"
                and path.name != "logs.py"
            ):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == []


# (e) ----------------------------------------------------------------------------------------


def test_run_error_is_redacted_where_the_runtime_writes_it(db: Path) -> None:
    with S.build_runtime(db) as rt:
        run = rt.start(S.FAIL_GOAL, principal=S.OPERATOR)
        stored = rt.store.get_run(run.thread_id)
        checkpoint = rt.graph.get_state({"configurable": {"thread_id": run.thread_id}}).values
    assert run.status == "failed"
    expected = "RuntimeError: Error code: 401 - Incorrect API key provided: [REDACTED:api_key]."
    for error in (run.error, stored.error if stored else None, checkpoint["error"]):
        assert (error or "").startswith(expected), error


# (f) ----------------------------------------------------------------------------------------

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0"
AWS = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
PAT = "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123456789ABCD"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"session {JWT} expired", "session [REDACTED:jwt] expired"),
        (f"clone with {PAT}", "clone with [REDACTED:api_key]"),
        (f"aws_secret_access_key = {AWS}", "aws_secret_access_key = [REDACTED:aws_secret]"),
        (f"AWS rejected {AWS} today", "AWS rejected [REDACTED:aws_secret] today"),
        (f"blob {AWS} alone", f"blob {AWS} alone"),  # forty characters, no AWS around
        ("commit 3f786850e387550fdab836ed7e6dc881de23001b", None),  # a git hash is no key
        ("pay GB82 WEST 1234 5698 7654 32 now", "pay [REDACTED:iban] now"),
        ("pay DE89370400440532013000 now", "pay [REDACTED:iban] now"),
        ("ref GB82 WEST 1234 5698 7654 33 now", None),  # fails mod-97
        ("my password: hunter2&x, thanks", "my password: [REDACTED:secret] thanks"),
        ("login password=s3cr3t now", "login password=[REDACTED:secret] now"),
        ("Invalid token: abc123def", "Invalid token: [REDACTED:secret]"),
        ('sent {"accessToken": "a b c"}', 'sent {"accessToken": "[REDACTED:secret]"}'),
        ("tokens: 42, max_tokens=5, secretary: Jane", None),
    ],
)
def test_detectors_find_what_the_review_found_missing(text: str, expected: str | None) -> None:
    assert Redactor().redact_text(text) == (text if expected is None else expected)


def test_an_agentrt_api_key_is_masked_in_text_and_agentrt_ids_are_not(db: Path) -> None:
    import sqlite3

    from agentrt.examples import refund_desk
    from agentrt.examples.refund_desk import APPROVER, GOAL, OPERATOR
    from agentrt.tracing.shown import shown

    with refund_desk.build_runtime(db) as rt:  # its own ids, as they come
        record, key = rt.keys.create(OPERATOR)
        assert key.startswith(f"agrt_{record.key_id}_")
        run = rt.start(f"{GOAL} The bot's key is {key}.", principal=OPERATOR)
        assert run.pending_approval is not None
        rt.decide(Decision.approve(run.pending_approval.id, by=APPROVER))
        assert key not in str(shown(run.goal, rt.redactor))
        for text in (f"key={key}", f"use {key} for it", f'{{"note": "{key}"}}', f"X-Key: {key}"):
            assert key not in rt.redactor.redact_text(text), text
        assert Redactor().redact_text(f"use {key} now") == "use [REDACTED:api_key] now"
    # Every id agentrt made for the run, and the key's own id, stays readable.
    with sqlite3.connect(db) as conn:
        ids = [
            str(value)
            for query in (
                "SELECT thread_id, trace_id, trace_span_id FROM runs",
                "SELECT id, step_id, args_digest FROM approvals",
                "SELECT key, args_digest FROM effects",
                "SELECT span_id, trace_id, parent_id FROM spans",
                "SELECT id FROM outbox",
                "SELECT key_id FROM api_keys",
            )
            for row in conn.execute(query)
            for value in row
            if value is not None
        ]
    ids += [f"agrt_{record.key_id}", f"agrt_{record.key_id}_"]
    assert len(ids) > 20
    text = " ".join(ids)
    assert Redactor().redact_text(text) == text


def test_camel_case_key_names_are_sensitive() -> None:
    value = {"accessToken": "a", "apiKey": "b", "clientSecret": "c", "APIKey": "d", "idToken": "e"}
    assert set(Redactor().redact(value).values()) == {"[REDACTED:field]"}
    kept = {"inputTokens": 3, "tokenCount": 4, "maxTokens": 5}
    assert Redactor().redact(kept) == kept


def test_iban_check() -> None:
    assert iban_valid("GB82 WEST 1234 5698 7654 32")
    assert not iban_valid("GB82 WEST 1234 5698 7654 33")


def test_redacting_twice_changes_nothing_and_known_values_are_cut_from_text() -> None:
    for mode in ("mask", "hash"):
        r = Redactor(mode=mode)  # type: ignore[arg-type]
        once = r.redact({"password": "pw", "note": f"mail {S.EMAIL}, password: pw2"})
        assert r.redact(once) == once
    cut = Redactor().redact({"note": f"pin {PIN} or {PIN}x"}, known=[PIN, "abc"])
    assert cut == {"note": f"pin [REDACTED:field] or {PIN}x"}


def nested(depth: int, inner: Any) -> Any:
    """``inner`` inside ``depth`` lists, built without recursion."""
    for _ in range(depth):
        inner = [inner]
    return inner


def test_a_value_nested_past_max_depth_is_masked_whole_never_a_recursion_error() -> None:
    # A 2.4 KB body nested 600 deep made the Redactor recurse past Python's limit: a 500
    # for an edit whose refusal it masked.
    deep = {"email": S.EMAIL, "x": nested(600, S.EMAIL)}
    for mode, marker in (("mask", "[REDACTED:nested]"), ("hash", "[nested:"), ("drop", "")):
        shown = Redactor(mode=mode).redact(deep)  # type: ignore[arg-type]
        inner, levels = shown["x"], 0
        while isinstance(inner, list):
            inner, levels = inner[0], levels + 1
        assert levels == MAX_DEPTH - 1  # the mapping is the first level
        assert inner.startswith(marker)
        assert S.EMAIL not in json.dumps(shown)
    # Within the bound nothing changes: the email is masked where it stands.
    assert Redactor().redact(nested(MAX_DEPTH - 1, S.EMAIL)) == nested(
        MAX_DEPTH - 1, "[REDACTED:email]"
    )
    # As JSON text too, and a sensitive field's value however deep (hashed from a stand-in).
    text = json.dumps(deep)
    assert S.EMAIL not in Redactor().redact_text(text)
    assert (
        Redactor(mode="hash")
        .redact({"password": nested(5000, "pw")})["password"]
        .startswith("[field:")
    )


DEEP_TEXT = "[" * 3000 + "]" * 3000  # 6 KB: past json.loads' reach, which raised RecursionError


def test_json_text_too_deep_to_parse_is_masked_as_json_within_the_bound_never_an_error() -> None:
    for mode in ("mask", "hash", "drop"):
        r = Redactor(mode=mode)  # type: ignore[arg-type]
        # Cut where the Redactor stops looking: as a text nested 150 deep (which parses) is.
        assert r.redact_text(DEEP_TEXT) == r.redact_text("[" * 150 + "]" * 150)
        deep = json.dumps({"pin": PIN, "to": S.EMAIL, "x": "@"}).replace('"@"', DEEP_TEXT)
        masked = json.loads(r.redact_text(deep, sensitive=["pin"]))
        assert PIN not in str(masked)
        assert S.EMAIL not in str(masked)
        parsed = json.dumps({"x": nested(150, [])})
        assert masked["x"] == json.loads(r.redact_text(parsed))["x"]
        assert PIN not in str(r.redact({"note": deep}, sensitive=["pin"]))  # a field's value
    assert json.loads(Redactor().redact_text(DEEP_TEXT)) == nested(MAX_DEPTH, "[REDACTED:nested]")
    # Only brackets outside strings nest; text whose brackets or quotes do not pair is no
    # JSON, and is masked as text.
    text = r'{"a": "]]}}\\\"[[", "to": "' + S.EMAIL + '", "x": ' + DEEP_TEXT + "}"
    assert json.loads(Redactor().redact_text(text))["a"] == ']]}}\\"[['
    for broken in (DEEP_TEXT + "]", DEEP_TEXT[1:], "[" * 3000 + f'"{S.EMAIL}'):
        assert Redactor().redact_text(broken) == broken.replace(S.EMAIL, "[REDACTED:email]")


def test_content_nested_past_pythons_limit_is_shown() -> None:
    from agentrt.tracing.shown import secret_values, shown

    # The sensitive fields' values are read without recursion, JSON text as the Redactor
    # reads it.
    deep = {"pin": PIN, "x": nested(5000, {"pin": "zebra-2"}), "y": DEEP_TEXT}
    assert secret_values(deep, Redactor(), ["pin"]) == [PIN, "zebra-2"]
    assert PIN not in json.dumps(shown(deep, Redactor(), sensitive=["pin"]))


@tool
def fetch(url: str) -> str:
    """Fetch a page: brackets nested 3,000 deep."""
    return DEEP_TEXT


@pytest.mark.parametrize("capture", [True, False], ids=["content-captured", "not-captured"])
def test_a_tool_result_of_deeply_nested_json_text_fails_no_run_and_is_shown(
    db: Path, capture: bool
) -> None:
    # With content captured, the spans masked it as the run went: RecursionError failed it.
    model = ScriptedChatModel([ai("", tool_call("fetch", {"url": "https://x.test"})), "Done."])
    with AgentRuntime(
        model, tools=[fetch], policy=Policy.allow_all(), db=db, capture_content=capture
    ) as rt:
        run = rt.start("Fetch the page.", principal=ALICE)
        assert run.status is RunStatus.SUCCEEDED, run.error
        events = rt.events(run.thread_id)
    shown = shown_events(events, rt.redactor, rt.tools.sensitive_of)  # raised RecursionError
    (seen,) = [e["data"] for e in shown if e["type"] == "observation"]
    assert seen["content"] == rt.redactor.redact_text(DEEP_TEXT)


# the salt ------------------------------------------------------------------------------------


def test_the_default_redactor_hashes_with_the_stores_own_salt(tmp_path: Path) -> None:
    def salt(db: Path, **kw: Any) -> str:
        with AgentRuntime(ScriptedChatModel(["x"]), db=db, tracing=None, **kw) as rt:
            return rt.redactor.salt

    first = salt(tmp_path / "a.db")
    assert first not in ("agentrt", "")
    assert salt(tmp_path / "a.db") == first  # the file's own, kept
    assert salt(tmp_path / "b.db") != first
    assert salt(tmp_path / "a.db", redactor=Redactor(mode="hash", salt="ours")) == "ours"


# the review page's edit ----------------------------------------------------------------------


def test_an_edit_keeps_what_the_person_could_not_see() -> None:
    original = {"note": f"card {S.CARD}", "cents": 10, "pin": PIN, "hidden": 1}
    seen = {"note": "card [REDACTED:card]", "cents": 10, "pin": "[REDACTED:field]"}
    edited = {"note": "card [REDACTED:card]", "cents": 5, "pin": "[REDACTED:field]"}
    assert unmasked(edited, original, seen) == {**original, "cents": 5}
    assert unmasked({**edited, "pin": "new"}, original, seen)["pin"] == "new"


def test_show_with_the_database_alone_hides_every_field_of_a_tool_it_cannot_see(
    db: Path,
) -> None:
    # Without the app nothing says which of unlock's fields are harmless: none are shown.
    model = ScriptedChatModel([ai("", tool_call("unlock", {"door": "front", "pin": PIN})), "in"])
    rt, _ = traced(db, model)
    with rt:
        run = rt.start("let me in", principal=ALICE)
    shown = CliRunner().invoke(cli_app, ["show", run.thread_id, "--db", str(db)])
    assert shown.exit_code == 0, shown.output
    assert "unlock(" in shown.output
    assert PIN not in shown.output
    assert "58213" not in shown.output
    assert '"door": "[REDACTED:field]"' in shown.output


def test_an_edit_keeps_a_field_whose_name_the_view_masked() -> None:
    email = "lee.park@example.com"  # as a key, and no key pattern's word in it
    original = {email: 3, "cents": 10}
    seen = Redactor().redact(original)
    assert seen == {"[REDACTED:email]": 3, "cents": 10}
    assert unmasked({**seen, "cents": 5}, original, seen) == {email: 3, "cents": 5}
    assert unmasked({**seen, "[REDACTED:email]": 4}, original, seen) == {email: 4, "cents": 10}
    assert unmasked({"cents": 10}, original, seen) == {"cents": 10}  # removed, so gone
    # a view that dropped a field cannot pair names by place: what it did not show stays
    dropped = Redactor(mode="drop").redact(original)
    assert unmasked({"cents": 5}, original, dropped) == {"cents": 5, email: 3}


# a reconcile request's reason ----------------------------------------------------------------


@tool(effect="write", sensitive=["pin"])  # not idempotent: a timeout leaves it in doubt
def open_vault(vault: str, pin: str) -> dict[str, Any]:
    """Open a vault with its pin; the bank's timeout quotes the pin, as a careless API does."""
    raise TimeoutError(f"vault {vault} did not answer to pin {pin} (key {S.ANSWER_KEY})")


def vault_model() -> ScriptedChatModel:
    """A model that opens the vault, then says it is done."""
    return ScriptedChatModel([ai("", tool_call("open_vault", {"vault": "v1", "pin": PIN})), "ok"])


def vault_desk(db: str | Path = "vault.db", **kwargs: Any) -> AgentRuntime:
    """Runs whose call is left in doubt, waiting for a person to reconcile it."""
    model = kwargs.pop("model", None) or vault_model()
    return AgentRuntime(model, tools=[open_vault], policy=Policy.allow_all(), db=db, **kwargs)


@pytest.mark.anyio
async def test_a_reconcile_requests_reason_and_comment_are_masked_wherever_shown_or_sent(
    db: Path,
) -> None:
    from agentrt.cli.mcp import shown as reviewed
    from agentrt.webhooks.dispatcher import body_of

    rt = vault_desk(db)
    # Written masked (the ledger keeps the tool's error exact): what reads the request as
    # kept, the run's log and the webhooks' events, has it masked too.
    first = rt.start("open vault v1", principal=ALICE).pending_approval
    assert first is not None
    assert first.kind == "reconcile"
    said = "did not answer to pin [REDACTED:field] (key [REDACTED:api_key])"
    assert said in first.reason, first.reason
    resolved = rt.decide(Decision.resolve(first.id, result={"opened": True}, by=ALICE))
    assert resolved.status == "succeeded"
    (logged,) = [e for e in rt.events(first.thread_id) if e["type"] == "approval"]
    assert said in logged["data"]["reason"]
    sent = [body_of(e, "https://agentrt.example") for e in rt.store.outbox_events()]
    assert [json.loads(b)["type"] for b in sent] == [
        "approval.requested",
        "approval.decided",
        "run.succeeded",
    ]
    assert all(PIN.encode() not in body for body in sent)
    # A request whose row holds its reason raw (written before it was masked) is masked
    # wherever it is shown...
    request = rt.start("open vault v1 again", principal=ALICE).pending_approval
    assert request is not None
    raw = f"'open_vault' has no recorded outcome: vault v1 did not answer to pin {PIN}"
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE approvals SET reason=? WHERE id=?", (raw, request.id))
    seen = await _reconcile_surfaces(rt, db, request.thread_id, request.id)
    # ... and so is a person's comment that quotes the pin, once it is settled.
    done = Decision.resolve(request.id, result={"opened": True}, by=ALICE, reason=f"pin {PIN} ok")
    rt.decide(done, resume=False)
    settled = await _reconcile_surfaces(rt, db, request.thread_id, request.id)
    seen |= {f"{where}, settled": text for where, text in settled.items()}
    seen["the MCP review tool"] = json.dumps(reviewed(rt, rt.approval(request.id)))
    rt.close()
    assert {where: PIN in text for where, text in seen.items()} == dict.fromkeys(seen, False)
    assert "did not answer to pin [REDACTED:field]" in seen["GET /approvals/{id}"]
    assert json.loads(seen["GET /approvals/{id}, settled"])["comment"] == "pin [REDACTED:field] ok"
    assert "did not answer to pin [REDACTED:field]" in seen["agentrt approvals show"]


def test_an_apps_own_graph_writes_its_reconcile_requests_reason_masked(db: Path) -> None:
    from langchain_core.messages import HumanMessage
    from langgraph.checkpoint.memory import InMemorySaver

    from agentrt.examples.own_graph import build_graph

    model = vault_model()
    with vault_desk(db, model=model) as rt:
        graph = build_graph(rt, model, InMemorySaver())
        rt.attach(graph)
        graph.invoke({"messages": [HumanMessage("open vault v1")]}, rt.thread(principal=ALICE))
        (request,) = rt.approvals(tenant=ALICE.tenant)
    assert request.kind == "reconcile"
    assert "did not answer to pin [REDACTED:field] (key [REDACTED:api_key])" in request.reason


async def _reconcile_surfaces(
    rt: AgentRuntime, db: Path, thread_id: str, approval_id: str
) -> dict[str, str]:
    """Every place a person reads the request: the API, the review page, the CLI."""
    seen: dict[str, str] = {}
    async with served(rt) as (_, http, key):
        status = rt.approval(approval_id).status.value
        for path in (
            f"/approvals/{approval_id}",
            f"/approvals?status={status}",
            f"/runs/{thread_id}",
        ):
            answer = await http.get(path)
            assert answer.status_code == 200, answer.text
            seen[f"GET {path.replace(approval_id, '{id}').replace(thread_id, '{id}')}"] = (
                answer.text
            )
        assert approval_id in seen[f"GET /approvals?status={status}"]
        await http.post("/ui/login", data={"key": key})
        seen["the review queue"] = html.unescape((await http.get("/ui")).text)
        seen["the run page"] = html.unescape((await http.get(f"/ui/runs/{thread_id}")).text)
    where = ["--app", f"{__name__}:vault_desk", "--db", str(db)]
    for command in (["approvals", "show", approval_id], ["show", thread_id]):
        shown = CliRunner().invoke(cli_app, [*command, *where])
        assert shown.exit_code == 0, shown.output
        seen[f"agentrt {command[0]} {'show' if command[0] == 'approvals' else ''}".strip()] = (
            shown.output
        )
    return seen
