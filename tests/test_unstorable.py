"""Values a model (or a caller) can send that storage cannot keep, and values too large to
keep: each is refused with a message naming where it is, and the run goes on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage

from agentrt import (
    AgentRuntime,
    ConfigError,
    Decision,
    InvalidDecision,
    Policy,
    Principal,
    RunStatus,
    SizeLimits,
    tool,
)
from agentrt.state import MAX_NESTING, unstorable
from agentrt.testing import ScriptedChatModel, ai, tool_call
from agentrt.tools.credentials import Credentials

P = Principal("p", tenant="acme")


@tool(effect="read")
def look(n: int, who: Any = "x") -> dict[str, Any]:
    """Look something up.

    Args:
        n: A number.
        who: Anything.
    """
    return {"n": n, "who": who}


@tool(effect="read")
def huge(n: int) -> dict[str, Any]:
    """Return a huge number.

    Args:
        n: Its exponent.
    """
    return {"value": 2**n}


def observations(rt: AgentRuntime, thread_id: str) -> list[tuple[str, str, str]]:
    return [
        (e["data"]["tool"], e["data"]["kind"], e["data"]["content"])
        for e in rt.events(thread_id)
        if e["type"] == "observation"
    ]


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        ({"n": 10**30}, "n is an integer of 31 digits, past 64 bits"),
        ({"n": 1, "who": {"x": [2**70]}}, "who.x[0] is an integer of 22 digits, past 64 bits"),
        ({"n": 1, "who": "\udc80"}, "who holds '\\udc80', which is not text (a lone surrogate)"),
        ({"n": 1, "who": {"\udc80": 1}}, "a key of who holds '\\udc80', which is not text"),
        ({"n": 1, "who": "a\x00b"}, "who holds a NUL character (U+0000), which is not text"),
    ],
)
def test_arguments_storage_cannot_keep_are_invalid_args_and_the_run_goes_on(
    db: Path, args: dict[str, Any], problem: str
) -> None:
    model = ScriptedChatModel([ai("", tool_call("look", args)), "gave up"])
    with AgentRuntime(model, tools=[look], policy=Policy.allow_all(), db=db) as rt:
        run = rt.start("look", principal=P)
        [(name, kind, content)] = observations(rt, run.thread_id)
    assert (run.status, run.output) == (RunStatus.SUCCEEDED, "gave up")
    assert (name, kind) == ("look", "invalid_args")
    assert content.startswith(f"arguments for tool 'look': {problem}")


@tool(effect="read", sensitive=["pin"])
def unlock(door: str, pin: str) -> dict[str, Any]:
    """Unlock a door.

    Args:
        door: Which door.
        pin: Its PIN.
    """
    return {"door": door, "open": True}


def _not_json(tool_name: str, args: str, call_id: str) -> AIMessage:
    """A call whose arguments are not JSON, with the error LangChain's parser gives it."""
    error = f"Function {tool_name} arguments:\n\n{args}\n\nare not valid JSON. Received ..."
    bad = {"name": tool_name, "args": args, "id": call_id, "error": error}
    return AIMessage("", invalid_tool_calls=[{**bad, "type": "invalid_tool_call"}])


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        (
            _not_json("look", '{"n": 4\ud8002', "c1"),
            "arguments for tool 'look': arguments are not valid JSON: '{\"n\": 4\\ud8002' "
            '(Function look arguments:\n\n{"n": 4\ufffd2\n\nare not valid JSON. Received ...); '
            "their text holds '\\ud800', which is not text (a lone surrogate)",
        ),
        (
            _not_json("unlock", '{"door": "d1", "pin": "5123-77\ud80089', "c1"),
            "arguments for tool 'unlock': arguments are not valid JSON (Function unlock "
            "arguments:\n\n<the arguments>\n\nare not valid JSON. Received ...); their text "
            "holds '\\ud800', which is not text (a lone surrogate)",
        ),
        (
            _not_json("look", '{"n": 4', "call_\ud800"),
            "arguments for tool 'look': arguments are not valid JSON: '{\"n\": 4' "
            '(Function look arguments:\n\n{"n": 4\n\nare not valid JSON. Received ...)',
        ),
    ],
    ids=["arguments", "sensitive", "id"],
)
def test_a_call_that_is_not_json_and_not_text_is_refused_and_the_run_goes_on(
    db: Path, answer: AIMessage, said: str
) -> None:
    # What storage cannot keep in a call whose arguments are not JSON is refused as in one
    # whose are: the model is told, naming the tool and what holds it, and the run goes on.
    model = ScriptedChatModel([answer, "gave up"])
    with AgentRuntime(model, tools=[look, unlock], policy=Policy.allow_all(), db=db) as rt:
        run = rt.start("look", principal=P)
        events = rt.events(run.thread_id)
    assert (run.status, run.output) == (RunStatus.SUCCEEDED, "gave up"), run.error
    [observed] = [e["data"] for e in events if e["type"] == "observation"]
    assert (observed["kind"], observed["content"]) == ("invalid_args", said)
    assert observed["call_id"] in ("c1", "call_\ufffd")
    [turn] = [m for m in model.calls[1].messages if isinstance(m, AIMessage)]
    assert [c["id"] for c in turn.tool_calls] == [observed["call_id"]]
    assert "5123-77" not in str(events)  # a sensitive tool's text is quoted nowhere


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_what_is_not_text_in_the_answer_is_replaced(
    backend: str, db: Path, request: pytest.FixtureRequest
) -> None:
    where = str(db) if backend == "sqlite" else request.getfixturevalue("postgres_url")
    model = ScriptedChatModel(["done \udc80 here\x00"])
    with AgentRuntime(model, db=where) as rt:
        run = rt.start("say something", principal=P)
        with pytest.raises(ConfigError, match=r"run\.goal holds a NUL character"):
            rt.start("refund\x00 order 42", principal=P)
        assert [r.thread_id for r in rt.runs()] == [run.thread_id]
    assert (run.status, run.output) == (RunStatus.SUCCEEDED, "done \ufffd here\ufffd")


def test_a_result_storage_cannot_keep_is_a_permanent_failure(db: Path) -> None:
    model = ScriptedChatModel([ai("", tool_call("huge", {"n": 70})), "ok"])
    with AgentRuntime(model, tools=[huge], policy=Policy.allow_all(), db=db) as rt:
        run = rt.start("huge", principal=P)
        [(name, kind, content)] = observations(rt, run.thread_id)
    assert run.status is RunStatus.SUCCEEDED
    assert (name, kind, content) == (
        "huge",
        "permanent",
        "permanent error: tool 'huge' returned a value that cannot be stored: "
        "result.value is an integer of 22 digits, past 64 bits",
    )


NOT_TEXT = {"nul": "\x00", "surrogate": b"\xe9".decode("utf-8", "surrogateescape")}
"""What an error can quote that storage cannot keep: raw modem or subprocess output (a
NUL), a file name decoded with surrogateescape (a lone surrogate)."""


def _failing(effect: str) -> Any:
    @tool(name=f"fail_{effect}", effect=effect, idempotent=effect == "write")
    def fail(name: str) -> str:
        """Fail, quoting what it was given as it came.

        Args:
            name: Which of NOT_TEXT to quote.
        """
        raise FileNotFoundError(f"no such file: caf{NOT_TEXT[name]}.txt")

    return fail


@pytest.mark.parametrize("bad", sorted(NOT_TEXT))
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_a_tool_error_quoting_what_is_not_text_is_an_observation_and_the_run_goes_on(
    backend: str, bad: str, db: Path, request: pytest.FixtureRequest
) -> None:
    where = str(db) if backend == "sqlite" else request.getfixturevalue("postgres_url")
    model = ScriptedChatModel(
        [
            ai("", tool_call("fail_read", {"name": bad})),
            ai("", tool_call("fail_write", {"name": bad})),
            "both failed",
        ]
    )
    tools = [_failing("read"), _failing("write")]
    with AgentRuntime(model, tools=tools, policy=Policy.allow_all(), db=where) as rt:
        run = rt.start("fail twice", principal=P)
        seen = observations(rt, run.thread_id)
        effects = [(e.tool, e.status, e.error) for e in rt.store.list_effects(run.thread_id)]
    said = "FileNotFoundError: no such file: caf\ufffd.txt"
    assert (run.status, run.error, run.output) == (RunStatus.SUCCEEDED, None, "both failed")
    assert seen == [
        ("fail_read", "permanent", f"permanent error: {said}"),
        ("fail_write", "permanent", f"permanent error: {said}"),
    ]
    assert effects == [("fail_write", "failed", said)]


def test_a_check_or_a_credential_failing_with_what_is_not_text_is_an_observation(
    db: Path,
) -> None:
    def rejects(args: dict[str, Any], data: Any) -> str:
        raise ValueError(f"checked caf{NOT_TEXT[args['name']]}.txt")

    @tool(effect="read", verify=rejects)
    def checked(name: str) -> str:
        """Return something its check refuses.

        Args:
            name: Which of NOT_TEXT the check quotes.
        """
        return "ok"

    @tool(effect="read", credentials=["crm"])
    def crm(name: str) -> str:
        """Need a credential the vault fails to give.

        Args:
            name: Unused.
        """
        return "ok"

    def vault(name: str, principal: Principal) -> str:
        raise RuntimeError("vault said \udce9\x00")

    model = ScriptedChatModel(
        [
            ai("", tool_call("checked", {"name": "surrogate"})),
            ai("", tool_call("checked", {"name": "nul"})),
            ai("", tool_call("crm", {"name": "x"})),
            "all failed",
        ]
    )
    with AgentRuntime(
        model,
        tools=[checked, crm],
        policy=Policy.allow_all(),
        db=db,
        credentials=Credentials.from_callable(vault),
    ) as rt:
        run = rt.start("check", principal=P)
        seen = observations(rt, run.thread_id)
    assert (run.status, run.error, run.output) == (RunStatus.SUCCEEDED, None, "all failed")
    checks = "postcondition of 'checked' raised ValueError: checked caf\ufffd.txt"
    assert seen[:2] == [("checked", "permanent", checks)] * 2
    [(name, kind, content)] = seen[2:]
    assert (name, kind) == ("crm", "permanent")
    assert "RuntimeError: vault said \ufffd\ufffd; the tool was not called" in content


def test_sizes_past_the_runtimes_limits_are_refused_by_name(db: Path) -> None:
    limits = SizeLimits(goal_chars=20, args_bytes=40, result_bytes=30)
    model = ScriptedChatModel(
        [
            ai("", tool_call("look", {"n": 1, "who": "x" * 50})),
            ai("", tool_call("look", {"n": 1, "who": "y" * 20})),
            "ok",
        ]
    )
    with AgentRuntime(model, tools=[look], policy=Policy.allow_all(), db=db, limits=limits) as rt:
        with pytest.raises(ConfigError, match=r"the goal is 21 characters, over .* of 20"):
            rt.start("x" * 21, principal=P)
        run = rt.start("look twice", principal=P)
        first, second = observations(rt, run.thread_id)
    assert first[1:] == (
        "invalid_args",
        "arguments for tool 'look': the arguments are 66 bytes, over the runtime's limit of "
        "40 (SizeLimits.args_bytes); pass less",
    )
    assert second[1:] == (
        "permanent",
        "permanent error: tool 'look' returned 36 bytes, over the runtime's limit of 30 "
        "(SizeLimits.result_bytes); return less (a summary or a page of it), or raise the limit",
    )


def test_a_goal_or_decision_storage_cannot_keep_is_refused_before_anything_is_written(
    db: Path,
) -> None:
    with AgentRuntime(ScriptedChatModel([]), db=db) as rt:
        with pytest.raises(ConfigError, match=r"run\.goal holds '\\udc80', which is not text"):
            rt.start("refund \udc80", principal=P)
        assert rt.runs() == []
        with pytest.raises(InvalidDecision, match=r"decision\.reason holds"):
            rt.decide(Decision.reject("apr_x", by=P, reason="no \udc80"))


def test_unstorable_accepts_what_storage_keeps() -> None:
    keepable = {"a": [1, -(2**63), 2**64 - 1, 1.5, None, True, "text é ✓"], "b": {"c": ""}}
    assert unstorable(keepable) is None
    assert unstorable(2**64) == "the value is an integer of 20 digits, past 64 bits"
    assert unstorable(-(2**63) - 1) == "the value is an integer of 19 digits, past 64 bits"


def test_a_value_nested_past_max_nesting_is_unstorable_however_deep() -> None:
    # Every walk over a value (masking, storing) recursed into it: 3000 deep was a
    # RecursionError where the reason is said.
    def nested(depth: int) -> Any:
        value: Any = 1
        for _ in range(depth):
            value = {"a": [value]}
        return value

    assert unstorable(nested(MAX_NESTING // 2)) is None
    for depth in (MAX_NESTING, 3000):
        said = unstorable(nested(depth), "result")
        assert said is not None
        assert said.startswith("result.a[0].a[0].a[0]")
        assert said.endswith(f"… nests more than {MAX_NESTING} levels deep, past what is stored")
