"""What the event stream sends of a model's answer: token by token, masked as the answer's
log entry is, however the answer is cut, and nothing the entry masks (split from
test_service_streaming.py)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Iterator
from itertools import pairwise
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, AIMessageChunk
from pydantic import BaseModel

from agentrt import AgentRuntime, Policy, tool
from agentrt.events import StreamEvent
from agentrt.redaction import Redactor
from agentrt.service import create_app, issue_key
from agentrt.service.answer_shown import AnswerShown
from agentrt.service.streamed import Pushed, takes_secrets
from agentrt.testing import ScriptedChatModel, ai, tool_call, wire
from agentrt.tools.registry import ToolRegistry
from agentrt.tracing.shown import shown as shown_value
from tests.conftest import FakeClock
from tests.provider_app import OPERATOR, TREASURER
from tests.test_service import Api, parse_sse

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# A model's answer, streamed token by token, is masked as its log entry: however it is cut. --

SECRET = "abcdef1234567890XYZtoken"
ANSWER = f"Paid. Call the receipts API with Bearer {SECRET}, or mail ops@example.com. Thanks"

GATED = """
version: 1
name: gated
default: allow
rules:
  - id: pays
    match: {tools: [pay]}
    decision: require_approval
    approval: {role: treasurer}
"""


@tool(effect="write", idempotent=True)
def pay(cents: int) -> dict[str, Any]:
    """Pay."""
    return {"paid": cents}


def _pieces(text: str, cuts: list[int]) -> list[str]:
    bounds = sorted({0, len(text), *(c for c in cuts if 0 < c < len(text))})
    return [text[a:b] for a, b in pairwise(bounds)]


def _stream_in(monkeypatch: pytest.MonkeyPatch, cut: Callable[[str], list[int]]) -> None:
    """Each scripted answer's text streamed in the pieces ``cut`` makes of it."""
    whole = wire.to_chunks

    def chunks(message: AIMessage) -> Iterator[AIMessageChunk]:
        made = list(whole(message))
        text = message.content
        if not isinstance(text, str) or not text:
            yield from made
            return
        first, *pieces = _pieces(text, cut(text))
        yield made[0].model_copy(update={"content": first})  # it carries the message's id
        for piece in pieces:
            yield AIMessageChunk(content=piece)
        yield from (c for c in made if not c.content)  # the tool calls, the last chunk

    monkeypatch.setattr(wire, "to_chunks", chunks)


_BEARER = ANSWER.index("Bearer")
_MAIL = ANSWER.index("ops@")
CUTS: dict[str, Callable[[str], list[int]]] = {
    "words": lambda text: [m.end() for m in re.finditer(r"\S+\s*", text)],
    "characters": lambda text: list(range(len(text))),
    "through the secrets": lambda _: [
        _BEARER + 2,  # "Be" | "arer"
        _BEARER + 6,  # "Bearer" | " abc..."
        _BEARER + 7,
        *range(_BEARER + 9, _BEARER + 7 + len(SECRET), 5),
        _MAIL + 2,
        _MAIL + 4,  # "ops@" | "example.com"
        _MAIL + 11,
    ],
}


async def _watched(
    db: Path, clock: FakeClock, model: ScriptedChatModel, tools: list[Any], goal: str
) -> list[dict[str, str]]:
    """The event stream of a run whose first step (paying) waits for a treasurer: opened
    while it waits, so it sees each later answer begin; read until the run ends."""
    rt = AgentRuntime(model, tools=tools, policy=Policy.from_yaml(GATED), db=db, clock=clock)
    app = create_app(rt, poll_interval=3600, sweep_every=None, rate_limit="10000/minute")
    keys = {"olga": issue_key(rt, OPERATOR), "tess": issue_key(rt, TREASURER)}
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        api = Api(app, client, keys)
        started = await api.call("POST", "/runs", "olga", json={"goal": goal})
        thread_id = started.json()["thread_id"]
        await api.settled(thread_id)
        run = (await api.call("GET", f"/runs/{thread_id}", "olga")).json()
        worker = app.state.agentrt.worker
        stream = asyncio.create_task(api.call("GET", f"/runs/{thread_id}/events", "olga"))
        while not worker.watched(thread_id):
            await asyncio.sleep(0)
        approval = run["pending_approvals"][0]["id"]
        decided = await api.decide(approval, {"outcome": "approve"}, who="tess")
        assert decided.status_code == 200, decided.text
        events = parse_sse((await asyncio.wait_for(stream, 30)).text)
    rt.close()
    return events


@pytest.mark.parametrize("cut", list(CUTS))
async def test_streamed_tokens_are_masked_as_the_answers_log_entry_however_they_are_cut(
    db: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, cut: str
) -> None:
    _stream_in(monkeypatch, CUTS[cut])
    model = ScriptedChatModel([ai("", tool_call("pay", {"cents": 5})), ANSWER])
    events = await _watched(db, clock, model, [pay], "pay 5")
    answer = [e for e in events if e["event"] == "plan"][-1]
    shown = json.loads(answer["data"])["data"]["content"]
    assert shown == (
        "Paid. Call the receipts API with [REDACTED:bearer], or mail [REDACTED:email]. Thanks"
    )
    tokens = [json.loads(e["data"])["data"] for e in events if e["event"] == "token"]
    said = [t["text"] for t in tokens]
    # Each token goes on from the one before as the entry does: no secret was ever sent.
    assert "".join(said) == shown
    assert SECRET[:4] not in "".join(said)
    assert {t["node"] for t in tokens} == {"plan"}
    # Live: the answer was sent in pieces before its log entry, not whole after it.
    assert len(said) > 1
    assert events.index(answer) > max(i for i, e in enumerate(events) if e["event"] == "token")


PIN = "otter-40917-copper"  # no detector knows its shape: only its field says it is secret


@tool(effect="read", sensitive=["pin"])
def check_door(door: str, pin: str) -> dict[str, Any]:
    """Check that a door opens to a pin."""
    return {"door": door, "opens": True}


@tool(effect="read")
def open_safe(safe: str, password: str) -> dict[str, Any]:
    """Open a safe; its field's name alone says it holds a secret."""
    return {"safe": safe, "open": True}


_SECRET_CALLS = {
    "a sensitive field": tool_call("check_door", {"door": "back", "pin": PIN}),
    "a field named as a secret": tool_call("open_safe", {"safe": "back", "password": PIN}),
}


@pytest.mark.parametrize("cut", ["words", "characters"])
@pytest.mark.parametrize("made_secret", list(_SECRET_CALLS))
async def test_tokens_never_send_a_value_the_answers_own_tool_call_makes_secret(
    db: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, cut: str, made_secret: str
) -> None:
    # The text repeats a value before the call that passes it comes (tool calls follow a
    # message's text): only then is it known for a secret, which the entry masks.
    _stream_in(monkeypatch, CUTS[cut])
    said = f"Paid. Now the back door with pin {PIN} as asked, then done."
    model = ScriptedChatModel(
        [ai("", tool_call("pay", {"cents": 5})), ai(said, _SECRET_CALLS[made_secret]), "Done."]
    )
    tools = [pay, check_door, open_safe]
    events = await _watched(db, clock, model, tools, "pay 5, open the door")
    plans = [json.loads(e["data"])["data"] for e in events if e["event"] == "plan"]
    entry = next(p for p in plans if "back door" in str(p.get("content")))
    assert (
        entry["content"] == "Paid. Now the back door with pin [REDACTED:field] as asked, then done."
    )
    tokens = [json.loads(e["data"])["data"]["text"] for e in events if e["event"] == "token"]
    # Joined, the tokens are the entries' texts as shown, the answer's tail included.
    assert "".join(tokens) == entry["content"] + "Done.", made_secret
    assert PIN not in str(events), made_secret


class Lock(BaseModel):
    room: str
    api_key: str


@tool(effect="read")
def set_lock(lock: Lock) -> str:
    """Set a lock: its secret a level down, in a model of its own."""
    return "set"


def test_which_tools_make_an_answer_wait_for_its_entry() -> None:
    redactor = Redactor()

    def held(*tools: Any) -> bool:
        return takes_secrets(ToolRegistry(tools), redactor)

    assert not held()
    assert not held(pay)  # nothing it takes is secret: its run's answers go live
    assert held(pay, check_door)  # declared sensitive
    assert held(open_safe)  # named as a secret
    assert held(set_lock)  # named as a secret, at any depth of the schema
    # Only nodes whose model is given tools wait: a summary goes live.
    rt = SimpleNamespace(redactor=redactor, tools=ToolRegistry([check_door]))
    pushed = Pushed(cast(AgentRuntime, rt))
    for node in ("plan", "summarize"):
        pushed.told(StreamEvent(thread_id="t", type="step_started", data={"node": node}), 0)
        event = StreamEvent(thread_id="t", type="token", data={"text": "Hello ", "node": node})
        sent = [e.data["data"]["text"] for e in pushed.told(event, 0)]
        assert sent == ([] if node == "plan" else ["Hello "]), node
        pushed.told(StreamEvent(thread_id="t", type="step_ended", data={"node": node}), 0)


def _streamed(redactor: Redactor, pieces: list[str], known: list[Any]) -> list[str]:
    """What an AnswerShown sends as each piece comes ("" for nothing), then at the end."""
    answer = AnswerShown("plan", redactor, known)
    sent = [answer.add(piece) for piece in pieces]
    final = str(shown_value("".join(pieces), redactor, known=known))
    return [*sent, answer.end(final)]


_FRAGMENTS = [
    *("Bearer ", "bearer\n", SECRET, "token", "=", ": ", '"', "'", "password", "secret"),
    *(" ", "\n", ".", "@", "example.com", "ops", "4111 1111 1111 1111", "4111", "-", "x"),
    *("DE89 3704 0044 0532 0130 00", "eyJhbGciOiJIUzI1NiJ9", ".eyJzdWIiOiIxMjM0In0", "_"),
    *("sk-live-", "a" * 20, "AKIA", "aws", "AWS secret key", "Authorization: Basic ", "/"),
    *("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "dXNlcjpwdw==", "Plum-Orchard-4471"),
]


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(
    parts=st.lists(st.sampled_from(_FRAGMENTS), min_size=1, max_size=12),
    cuts=st.lists(st.integers(min_value=1, max_value=400), max_size=25),
    mode=st.sampled_from(["mask", "hash", "drop"]),
)
def test_an_answer_streamed_in_any_pieces_never_sends_what_its_entry_masks(
    parts: list[str], cuts: list[int], mode: str
) -> None:
    text = "Done: " + "".join(parts)
    redactor = Redactor(mode=mode)  # type: ignore[arg-type]
    known = ["Plum-Orchard-4471"]  # a sensitive argument of the run's log
    final = str(shown_value(text, redactor, known=known))
    sent = _streamed(redactor, _pieces(text, cuts), known)
    for upto in range(1, len(sent) + 1):  # at every moment, a beginning of the entry
        assert final.startswith("".join(sent[:upto])), (text, sent)
    assert "".join(sent) == final


def test_an_answer_is_sent_as_it_comes_but_where_a_secret_could_still_complete() -> None:
    redactor = Redactor()
    words = ["Deployed ", "to ", "AWS ", "in ", "us-east-1; ", "the ", "bucket ", "is ", "ok "]
    # Each word once it ends; "AWS in" until it is not "AWS in us-east-1 secret key: ...".
    assert _streamed(redactor, words, []) == [
        *("Deployed ", "to ", "", "", "AWS in us-east-1; "),
        *("the ", "bucket ", "is ", "ok ", ""),
    ]
    # A word that could still grow into a secret (an address) waits for what follows.
    assert _streamed(redactor, ["Mail ", "ops", " today"], []) == ["Mail ", "", "ops ", "today"]
    # A bearer token is held whole until it ends, then sent masked.
    pieces = ["Use Bear", "er ", SECRET[:6], SECRET[6:], " now", " please"]
    assert _streamed(redactor, pieces, []) == [
        "Use ",
        "",
        "",
        "",
        "[REDACTED:bearer] ",
        "now ",
        "please",
    ]
    # JSON is masked field by field, so only as a whole.
    json_pieces = ['{"password": ', '"hunter2", ', '"ok": true}']
    assert _streamed(redactor, json_pieces, []) == [
        "",
        "",
        "",
        '{"ok": true, "password": "[REDACTED:field]"}',
    ]
    # Forty characters are an AWS key once the text speaks of AWS, wherever it does.
    key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    sent = _streamed(redactor, ["Key ", key, " is ", "fine ", "on ", "AWS"], [])
    assert key not in "".join(sent)
    assert "".join(sent) == "Key [REDACTED:aws_secret] is fine on AWS"


def test_a_stream_sends_in_tokens_only_the_answers_it_saw_begin() -> None:
    tools = SimpleNamespace(sensitive_of=lambda _: (), names=list)  # no tool takes a secret
    rt = SimpleNamespace(redactor=Redactor(), tools=tools)
    pushed = Pushed(cast(AgentRuntime, rt))

    def told(kind: str, data: dict[str, Any], index: int | None = None) -> list[Any]:
        event = StreamEvent(thread_id="t", type=kind, data=data, index=index)  # type: ignore[arg-type]
        return [(e.event, e.data["data"]) for e in pushed.told(event, 0)]

    def said(text: str) -> list[Any]:
        return told("token", {"text": text, "node": "plan"})

    answer = {"revision": 0, "content": f"Use Bearer {SECRET} now", "actions": []}
    # Watched from the middle of an answer ("Bearer " missed): none of it in tokens...
    assert said(SECRET[:9]) == said(SECRET[9:] + " now") == []
    shown_answer = {**answer, "content": "Use [REDACTED:bearer] now"}
    assert told("plan", answer, index=0) == [("plan", shown_answer)]  # ...it comes whole
    assert told("step_ended", {"node": "plan"}) == [("step_ended", {"node": "plan"})]
    # One seen from its start comes in tokens, the rest as its entry ends it.
    told("step_started", {"node": "plan"})
    assert [said(p) for p in ("Use ", "Bearer ", SECRET, " now")] == [
        [("token", {"text": "Use ", "node": "plan"})],
        [],
        [],
        [("token", {"text": "[REDACTED:bearer] ", "node": "plan"})],
    ]
    assert told("plan", answer, index=1)[0] == ("token", {"text": "now", "node": "plan"})
    told("step_ended", {"node": "plan"})
    # A step that failed sends nothing of what it held.
    told("step_started", {"node": "plan"})
    assert said("Use Bearer ") == [("token", {"text": "Use ", "node": "plan"})]
    assert said(SECRET[:5]) == []
    assert told("step_ended", {"node": "plan", "error": "boom"}) == [
        ("step_ended", {"node": "plan", "error": "boom"})
    ]
