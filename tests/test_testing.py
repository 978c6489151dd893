"""Tests for agentrt.testing.ScriptedChatModel and its helpers."""

import asyncio
import copy
import pickle
import re
import threading
import time
from functools import reduce
from operator import add
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    ToolMessage,
)
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from agentrt.testing import (
    ScriptedCall,
    ScriptedChatModel,
    ScriptExhausted,
    ai,
    tool_call,
)


@tool
def lookup_order(order_id: str) -> str:
    """Look up an order by id."""
    return f"order {order_id}: shipped"


CANCEL_ORDER_SCHEMA: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "cancel_order",
        "description": "Cancel an order.",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string"}},
            "required": ["order_id"],
        },
    },
}

HI = HumanMessage("Where is my order 42?")


def essentials(message: BaseMessage) -> dict[str, Any]:
    """The parts of a response the script decides; ids are LangChain's."""
    assert isinstance(message, AIMessage)
    return {
        "content": message.content,
        "tool_calls": message.tool_calls,
        "usage_metadata": message.usage_metadata,
        "response_metadata": message.response_metadata,
    }


def after_turns(*responses: str) -> list[BaseMessage]:
    """A conversation in which the model has already answered len(responses) times."""
    conversation: list[BaseMessage] = [HI]
    for response in responses:
        conversation += [AIMessage(response), HumanMessage("go on")]
    return conversation


# --- helpers ---------------------------------------------------------------


def test_tool_call_and_ai_helpers_build_langchain_messages() -> None:
    call = tool_call("lookup_order", {"order_id": "42"})

    assert call == {
        "name": "lookup_order",
        "args": {"order_id": "42"},
        "id": None,
        "type": "tool_call",
    }
    assert tool_call("ping", id="c1") == {
        "name": "ping",
        "args": {},
        "id": "c1",
        "type": "tool_call",
    }
    assert ai("", call) == AIMessage(content="", tool_calls=[call])
    assert ai("plain") == AIMessage(content="plain")


# --- step kinds ------------------------------------------------------------


def test_str_step_becomes_an_ai_message() -> None:
    model = ScriptedChatModel(["Hello!"])

    reply = model.invoke([HI])

    assert isinstance(reply, AIMessage)
    assert reply.content == "Hello!"
    assert reply.tool_calls == []


def test_ai_message_step_is_returned_with_its_fields() -> None:
    scripted = AIMessage(
        content="Checking.",
        name="assistant",
        additional_kwargs={"note": "kept"},
        tool_calls=[tool_call("lookup_order", {"order_id": "42"}, id="abc")],
    )
    model = ScriptedChatModel([scripted])

    reply = model.invoke([HI])

    assert reply.content == "Checking."
    assert reply.name == "assistant"
    assert reply.additional_kwargs == {"note": "kept"}
    assert reply.tool_calls == scripted.tool_calls


def test_callable_step_sees_the_request_messages() -> None:
    seen: list[list[BaseMessage]] = []

    def echo(messages: list[BaseMessage]) -> str:
        seen.append(messages)
        return f"You said: {messages[-1].content}"

    def lookup(messages: list[BaseMessage]) -> AIMessage:
        return ai("", tool_call("lookup_order", {"n": len(messages)}))

    model = ScriptedChatModel([echo, lookup])

    assert model.invoke([HI]).content == "You said: Where is my order 42?"
    assert seen == [[HI]]
    reply = model.invoke(after_turns("x"))
    assert reply.tool_calls == [tool_call("lookup_order", {"n": 3}, id="call_1_0")]


def test_callable_step_returning_the_wrong_type_is_a_type_error() -> None:
    model = ScriptedChatModel([lambda messages: 42])  # type: ignore[list-item, return-value]

    with pytest.raises(TypeError, match="step 0 returned int"):
        model.invoke([HI])


def test_invalid_steps_are_rejected_at_construction() -> None:
    with pytest.raises(TypeError, match=r"step 1 must be .* got int"):
        ScriptedChatModel(["ok", 42])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="sequence of steps, got str"):
        ScriptedChatModel("just one answer")


# --- tool call ids ---------------------------------------------------------


def test_missing_tool_call_ids_are_deterministic_per_turn_and_position() -> None:
    script = [
        ai("", tool_call("lookup_order", {"order_id": "42"})),
        ai(
            "",
            tool_call("lookup_order", {"order_id": "1"}),
            tool_call("cancel_order", {"order_id": "2"}, id="keep-me"),
            tool_call("lookup_order", {"order_id": "3"}),
        ),
    ]

    first = ScriptedChatModel(script).invoke([HI])
    second = ScriptedChatModel(script).invoke(after_turns("x"))

    assert [c["id"] for c in first.tool_calls] == ["call_0_0"]
    assert [c["id"] for c in second.tool_calls] == ["call_1_0", "keep-me", "call_1_2"]
    # Another instance (another process, say) hands out the same ids.
    assert ScriptedChatModel(script).invoke([HI]).tool_calls == first.tool_calls


# --- conversation indexing -------------------------------------------------


def test_turn_is_the_number_of_ai_messages_in_the_request() -> None:
    script = ["zero", "one", "two"]
    resumed = ScriptedChatModel(script)

    reply = resumed.invoke(after_turns("zero", "one"))

    assert reply.content == "two"
    assert [(c.turn, c.step_index) for c in resumed.calls] == [(2, 2)]


def test_repeating_a_request_repeats_its_answer() -> None:
    model = ScriptedChatModel(["zero", "one"])

    assert model.invoke([HI]).content == "zero"
    assert model.invoke([HI]).content == "zero"
    assert model.invoke(after_turns("zero")).content == "one"


def test_full_tool_loop_follows_the_script() -> None:
    model = ScriptedChatModel(
        [ai("", tool_call("lookup_order", {"order_id": "42"})), "It has shipped."]
    )
    conversation: list[BaseMessage] = [HI]

    request = model.invoke(conversation)
    conversation += [request, ToolMessage("shipped", tool_call_id="call_0_0")]
    answer = model.invoke(conversation)

    assert request.tool_calls[0]["id"] == "call_0_0"
    assert answer.content == "It has shipped."
    model.assert_complete()


# --- exception steps -------------------------------------------------------


def test_exception_step_is_raised_once_then_its_turn_is_served() -> None:
    error = TimeoutError("provider timed out")
    model = ScriptedChatModel([error, "done"])

    with pytest.raises(TimeoutError, match="provider timed out") as raised:
        model.invoke([HI])
    assert raised.value is error
    assert model.invoke([HI]).content == "done"
    assert model.invoke([HI]).content == "done"


def test_exceptions_attach_to_the_following_turn_in_order() -> None:
    model = ScriptedChatModel(["zero", ConnectionError("a"), TimeoutError("b"), "one"])

    assert model.invoke([HI]).content == "zero"
    with pytest.raises(ConnectionError, match="a"):
        model.invoke(after_turns("zero"))
    with pytest.raises(TimeoutError, match="b"):
        model.invoke(after_turns("zero"))
    assert model.invoke(after_turns("zero")).content == "one"
    assert [(c.turn, c.step_index) for c in model.calls] == [
        (0, 0),
        (1, 1),
        (1, 2),
        (1, 3),
    ]


def test_exception_class_is_instantiated_per_raise() -> None:
    script: list[Any] = [TimeoutError, "done"]
    first = ScriptedChatModel(script)
    second = ScriptedChatModel(script)

    with pytest.raises(TimeoutError) as one:
        first.invoke([HI])
    with pytest.raises(TimeoutError) as two:
        second.invoke([HI])

    assert type(one.value) is TimeoutError
    assert one.value is not two.value
    assert first.calls[0].outcome is one.value


def test_a_new_instance_raises_the_scripted_exceptions_again() -> None:
    script: list[Any] = [TimeoutError("flaky"), "done"]
    first = ScriptedChatModel(script)
    with pytest.raises(TimeoutError):
        first.invoke([HI])
    assert first.invoke([HI]).content == "done"

    restarted = ScriptedChatModel(script)

    with pytest.raises(TimeoutError):
        restarted.invoke([HI])
    assert restarted.invoke([HI]).content == "done"


def test_trailing_exceptions_are_raised_on_the_turn_after_the_last() -> None:
    model = ScriptedChatModel(["only", RuntimeError("after the end")])

    with pytest.raises(RuntimeError, match="after the end"):
        model.invoke(after_turns("only"))
    with pytest.raises(ScriptExhausted):
        model.invoke(after_turns("only"))
    assert model.invoke([HI]).content == "only"


def test_callable_step_errors_propagate_and_are_recorded() -> None:
    def broken(messages: list[BaseMessage]) -> str:
        raise KeyError("missing")

    model = ScriptedChatModel([broken])

    with pytest.raises(KeyError, match="missing"):
        model.invoke([HI])
    assert isinstance(model.calls[0].outcome, KeyError)
    assert model.served_turns == frozenset()


# --- exhaustion and completeness -------------------------------------------


def test_asking_past_the_end_raises_script_exhausted() -> None:
    model = ScriptedChatModel(["zero", TimeoutError("t"), "one"])

    with pytest.raises(ScriptExhausted) as raised:
        model.invoke(after_turns("zero", "one"))

    message = str(raised.value)
    assert "turn 2" in message
    assert "2 turns (3 steps)" in message
    assert "HumanMessage(content='go on'" in message
    assert "Add a step to the script" in message
    assert isinstance(raised.value, AssertionError)
    assert model.calls[0].step_index == 3
    assert model.calls[0].outcome is raised.value


def test_script_exhausted_truncates_the_last_message() -> None:
    model = ScriptedChatModel([])

    with pytest.raises(ScriptExhausted, match="turn 0") as raised:
        model.invoke([HumanMessage("x" * 5000)])

    assert "x" * 150 in str(raised.value)
    assert "x" * 300 not in str(raised.value)
    assert "...." in str(raised.value)


def test_assert_complete_names_the_turns_never_served() -> None:
    model = ScriptedChatModel(["zero", TimeoutError("t"), "one", "two"])
    model.invoke([HI])

    with pytest.raises(AssertionError, match=r"turn 1 \(step 2\), turn 2 \(step 3\)"):
        model.assert_complete()


def test_assert_complete_passes_once_every_turn_was_served() -> None:
    model = ScriptedChatModel(["zero", TimeoutError("t"), "one"])
    model.invoke([HI])
    with pytest.raises(TimeoutError):
        model.invoke(after_turns("zero"))
    model.invoke(after_turns("zero"))

    model.assert_complete()
    assert model.served_turns == frozenset({0, 1})


def test_assert_complete_only_counts_this_instance() -> None:
    resumed = ScriptedChatModel(["zero", "one"])
    resumed.invoke(after_turns("zero"))

    with pytest.raises(AssertionError, match=r"1 of 2 .*turn 0 \(step 0\)"):
        resumed.assert_complete()


# --- recording and tools ---------------------------------------------------


def test_calls_record_messages_tools_turn_step_and_outcome() -> None:
    model = ScriptedChatModel([ai("", tool_call("lookup_order", {"order_id": "42"}))])
    bound = model.bind_tools([lookup_order, CANCEL_ORDER_SCHEMA])

    reply = bound.invoke([HI])

    (call,) = model.calls
    assert call == ScriptedCall(
        messages=(HI,),
        tool_names=("lookup_order", "cancel_order"),
        turn=0,
        step_index=0,
        outcome=call.outcome,
    )
    assert isinstance(call.outcome, AIMessage)
    assert essentials(call.outcome) == essentials(reply)


def test_a_call_keeps_the_messages_as_they_were_and_gives_copies() -> None:
    # Kept pickled, not as objects: a message changed after the call, or a copy read from
    # the record and changed, leaves the record as the call saw it.
    model = ScriptedChatModel(["one", "two"])
    said = HumanMessage("first")
    model.invoke([said])
    said.content = "changed after the call"
    (call,) = model.calls
    assert isinstance(call._kept, bytes)
    read = call.messages
    assert [m.content for m in read] == ["first"]
    read[0].content = "changed on a copy"
    assert call.messages[0].content == "first"
    assert call.messages is not read
    with pytest.raises(AttributeError, match="cannot be set"):
        call.turn = 3  # type: ignore[misc]
    # Copied and pickled as a record, made positionally in its fields' order, as before.
    for again in (copy.copy(call), copy.deepcopy(call), pickle.loads(pickle.dumps(call))):
        assert again == call
        assert again.messages[0].content == "first"
    assert call == ScriptedCall(call.messages, (), 0, 0, call.outcome)
    # Content pickle cannot take is kept as copies, as before.
    odd = HumanMessage(content=[{"type": "text", "text": "x", "hook": lambda: 1}])
    model.invoke([odd])
    assert isinstance(model.calls[1]._kept, tuple)
    assert model.calls[1].messages[0].content[0]["text"] == "x"  # type: ignore[index]


def test_bind_tools_shares_the_script_with_the_parent() -> None:
    model = ScriptedChatModel(["zero", "one"])
    bound = model.bind_tools([lookup_order], tool_choice="any")

    assert bound.invoke([HI]).content == "zero"
    assert model.invoke(after_turns("zero")).content == "one"
    assert [c.tool_names for c in model.calls] == [("lookup_order",), ()]
    model.assert_complete()


def test_recorded_messages_are_copies() -> None:
    model = ScriptedChatModel(["zero"])
    message = HumanMessage("hello")
    model.invoke([message])

    message.content = "changed later"

    assert model.calls[0].messages[0].content == "hello"


def test_calls_are_thread_safe() -> None:
    model = ScriptedChatModel([TimeoutError("once"), "zero"])
    errors: list[BaseException] = []

    def worker() -> None:
        for _ in range(20):
            try:
                model.invoke([HI])
            except TimeoutError as exc:
                errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(errors) == 1
    assert len(model.calls) == 160


# --- response details ------------------------------------------------------


def test_usage_and_metadata_are_deterministic() -> None:
    script = [ai("Sure thing.", tool_call("lookup_order", {"order_id": "42"}))]

    replies = [ScriptedChatModel(script).invoke([HI]) for _ in range(2)]

    # Request: 21 characters -> 5 tokens. Response: 11 content characters plus
    # 93 characters of tool-call JSON -> 26 tokens.
    assert essentials(replies[0]) == {
        "content": "Sure thing.",
        "tool_calls": [tool_call("lookup_order", {"order_id": "42"}, id="call_0_0")],
        "usage_metadata": {"input_tokens": 5, "output_tokens": 26, "total_tokens": 31},
        "response_metadata": {"model_name": "scripted"},
    }
    assert essentials(replies[1]) == essentials(replies[0])


def test_usage_is_at_least_one_token() -> None:
    reply = ScriptedChatModel([""]).invoke([HumanMessage("")])

    assert reply.usage_metadata == {
        "input_tokens": 1,
        "output_tokens": 1,
        "total_tokens": 2,
    }


def test_scripted_usage_and_metadata_are_kept() -> None:
    usage = {"input_tokens": 7, "output_tokens": 3, "total_tokens": 10}
    scripted = AIMessage(
        content="hi",
        usage_metadata=usage,
        response_metadata={"model_name": "gpt-x", "finish_reason": "stop"},
    )

    reply = ScriptedChatModel([scripted], model_name="fake-gpt").invoke([HI])

    assert reply.usage_metadata == usage
    assert reply.response_metadata["model_name"] == "gpt-x"
    assert reply.response_metadata["finish_reason"] == "stop"


def test_model_name_is_reported() -> None:
    model = ScriptedChatModel(["hi"], model_name="fake-gpt")

    assert model.invoke([HI]).response_metadata["model_name"] == "fake-gpt"
    assert model._llm_type == "scripted"
    assert model._identifying_params == {"model_name": "fake-gpt"}


def test_scripted_messages_are_not_mutated() -> None:
    scripted = ai("Checking.", tool_call("lookup_order", {"order_id": "42"}))
    pristine = scripted.model_copy(deep=True)
    model = ScriptedChatModel([scripted])

    reply = model.invoke([HI])
    reply.tool_calls[0]["args"]["order_id"] = "tampered"
    list(model.stream([HI]))

    assert scripted == pristine
    assert scripted.tool_calls[0]["id"] is None
    assert scripted.usage_metadata is None


# --- streaming and async ---------------------------------------------------


def test_stream_sums_to_the_invoked_message() -> None:
    script = [
        ai(
            "Let me look that up  for you.",
            tool_call("lookup_order", {"order_id": "42"}),
            tool_call("cancel_order", {"order_id": "7", "reason": None}),
        )
    ]
    invoked = ScriptedChatModel(script).invoke([HI])

    chunks = list(ScriptedChatModel(script).stream([HI]))

    assert all(isinstance(c, AIMessageChunk) for c in chunks)
    assert len(chunks) > 4
    assert [c.content for c in chunks if c.content] == [
        "Let ",
        "me ",
        "look ",
        "that ",
        "up  ",
        "for ",
        "you.",
    ]
    assert [c.tool_call_chunks for c in chunks if c.tool_call_chunks] == [
        [
            {
                "name": "lookup_order",
                "args": '{"order_id": "42"}',
                "id": "call_0_0",
                "index": 0,
                "type": "tool_call_chunk",
            }
        ],
        [
            {
                "name": "cancel_order",
                "args": '{"order_id": "7", "reason": null}',
                "id": "call_0_1",
                "index": 1,
                "type": "tool_call_chunk",
            }
        ],
    ]
    assert chunks[-1].usage_metadata == invoked.usage_metadata
    assert essentials(reduce(add, chunks)) == essentials(invoked)


def test_stream_of_plain_text_and_of_empty_text() -> None:
    for text in ["  padded  answer ", ""]:
        invoked = ScriptedChatModel([text]).invoke([HI])
        chunks = list(ScriptedChatModel([text]).stream([HI]))
        assert essentials(reduce(add, chunks)) == essentials(invoked)


def test_stream_raises_scripted_exceptions_then_serves() -> None:
    model = ScriptedChatModel([TimeoutError("t"), "done"])

    with pytest.raises(TimeoutError):
        list(model.stream([HI]))

    assert "".join(str(c.content) for c in model.stream([HI])) == "done"


def test_ainvoke_and_astream_follow_the_same_script() -> None:
    model = ScriptedChatModel(
        [TimeoutError("t"), ai("", tool_call("lookup_order", {"order_id": "1"})), "ok"]
    )

    async def scenario() -> tuple[AIMessage, list[AIMessageChunk]]:
        with pytest.raises(TimeoutError):
            await model.ainvoke([HI])
        first = await model.ainvoke([HI])
        chunks = [c async for c in model.astream([HI, first])]
        return first, chunks

    first, chunks = asyncio.run(scenario())

    assert first.tool_calls == [tool_call("lookup_order", {"order_id": "1"}, id="call_0_0")]
    assert reduce(add, chunks).content == "ok"
    model.assert_complete()


# --- with LangGraph ----------------------------------------------------------


def agent_graph(
    model: BaseChatModel, checkpointer: InMemorySaver
) -> CompiledStateGraph[MessagesState]:
    """A minimal tool-calling agent that pauses after running tools."""
    bound = model.bind_tools([lookup_order])

    def agent(state: MessagesState) -> dict[str, list[BaseMessage]]:
        return {"messages": [bound.invoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode([lookup_order]))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=checkpointer, interrupt_after=["tools"])


def test_a_resumed_run_continues_the_script_in_a_new_instance() -> None:
    script: list[AIMessage | str] = [
        ai("", tool_call("lookup_order", {"order_id": "42"})),
        "It has shipped.",
    ]
    checkpointer = InMemorySaver()
    config: RunnableConfig = {"configurable": {"thread_id": "t1"}}
    before_crash = ScriptedChatModel(script)

    # Streaming messages routes the model call through `_stream`.
    streamed = list(
        agent_graph(before_crash, checkpointer).stream(
            {"messages": [HI]}, config, stream_mode="messages"
        )
    )
    after_restart = ScriptedChatModel(script)
    final = agent_graph(after_restart, checkpointer).invoke(None, config)

    ai_chunks = [chunk for chunk, _ in streamed if isinstance(chunk, AIMessageChunk)]
    assert len(ai_chunks) > 1
    assert reduce(add, ai_chunks).tool_calls == [
        tool_call("lookup_order", {"order_id": "42"}, id="call_0_0")
    ]
    assert [m.type for m in final["messages"]] == ["human", "ai", "tool", "ai"]
    assert final["messages"][1].tool_calls[0]["id"] == "call_0_0"
    assert final["messages"][2].tool_call_id == "call_0_0"
    assert final["messages"][-1].content == "It has shipped."
    assert [(c.turn, c.tool_names) for c in before_crash.calls] == [(0, ("lookup_order",))]
    assert [(c.turn, c.tool_names) for c in after_restart.calls] == [(1, ("lookup_order",))]


# --- latency -----------------------------------------------------------------


class Sleeps:
    """Stands in for time.sleep and asyncio.sleep: records the delays, waits for none."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.blocking: list[float] = []
        self.awaited: list[float] = []
        original = asyncio.sleep

        async def asleep(delay: float, result: Any = None) -> Any:
            self.awaited.append(delay)
            return await original(0, result)

        monkeypatch.setattr(time, "sleep", self.blocking.append)
        monkeypatch.setattr(asyncio, "sleep", asleep)


def test_latency_blocks_each_sync_call_and_each_fault(monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps = Sleeps(monkeypatch)
    model = ScriptedChatModel([TimeoutError("t"), "one", "two"], latency=0.25)

    with pytest.raises(TimeoutError):
        model.invoke([HI])
    first = model.invoke([HI])
    chunks = list(model.stream([HI, first]))

    assert (first.content, reduce(add, chunks).content) == ("one", "two")
    # the fault, the answer, and one wait before the stream's first chunk
    assert (sleeps.blocking, sleeps.awaited) == ([0.25, 0.25, 0.25], [])


def test_latency_is_awaited_on_the_async_path(monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps = Sleeps(monkeypatch)
    model = ScriptedChatModel(["one", "two"], latency=0.05)

    async def scenario() -> tuple[AIMessage, list[AIMessageChunk]]:
        first = await model.ainvoke([HI])
        return first, [c async for c in model.astream([HI, first])]

    first, chunks = asyncio.run(scenario())

    assert (first.content, reduce(add, chunks).content) == ("one", "two")
    assert (sleeps.blocking, sleeps.awaited) == ([], [0.05, 0.05])


def test_no_latency_never_sleeps(monkeypatch: pytest.MonkeyPatch) -> None:
    sleeps = Sleeps(monkeypatch)
    model = ScriptedChatModel(["one", "two"])

    first = model.invoke([HI])
    asyncio.run(model.ainvoke([HI, first]))

    assert model.latency == 0.0
    assert (sleeps.blocking, sleeps.awaited) == ([], [])


@pytest.mark.parametrize("latency", [-0.1, float("nan"), float("inf"), "0.1", True, None])
def test_latency_must_be_seconds(latency: object) -> None:
    with pytest.raises(
        ValueError,
        match=rf"latency must be a finite number of seconds >= 0, got {re.escape(repr(latency))}",
    ):
        ScriptedChatModel(["x"], latency=latency)


def test_a_scripted_model_is_shown_by_its_scripts_length_not_its_messages() -> None:
    """LangChain keeps a model it cannot serialize as its repr, made at the first call: a
    whole script's repr cost each test's first call 10 ms at 20 turns, 93 at 200."""
    turns = [ai("", tool_call("noop", {"i": k, "note": "x" * 50})) for k in range(200)]
    model = ScriptedChatModel([*turns, "done"])
    shown = model._serialized["repr"]
    assert "steps='<201 steps>'" in shown
    assert "noop" not in shown
    assert len(shown) < 300
