"""ScriptedChatModel: a LangChain chat model that answers from a fixed script.

It picks its answer from the conversation it is given rather than from how often it was
called, so a run that is checkpointed, killed and resumed in another process keeps
following the same script. Its docstring has the whole contract.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any, Self, TypeAlias

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ToolCall,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import PrivateAttr, SkipValidation, field_validator, model_validator
from typing_extensions import TypeIs

from agentrt import steps as procedure
from agentrt.testing import wire
from agentrt.testing.calls import ScriptedCall, keep, recorded

__all__ = ["ScriptExhausted", "ScriptedCall", "ScriptedChatModel", "ai", "tool_call"]

Responder: TypeAlias = Callable[[list[BaseMessage]], AIMessage | str]
"""A step computed from the request's messages when its turn is served."""

Fault: TypeAlias = BaseException | type[BaseException]
"""A step that makes the model raise instead of answering."""

Step: TypeAlias = AIMessage | str | Responder | Fault
"""One entry of a `ScriptedChatModel` script."""

_REPR_LIMIT = 200


class ScriptExhausted(AssertionError):
    """Signals that the code under test asked for more turns than were scripted.

    It subclasses `AssertionError` so test runners report it as a failed
    expectation rather than as a crash of the code under test.
    """


@dataclass(frozen=True)
class _Turn:
    """One answering step of the script and the faults raised before it."""

    step_index: int
    response: AIMessage | str | Responder
    faults: tuple[tuple[int, Fault], ...]


def tool_call(name: str, args: dict[str, Any] | None = None, *, id: str | None = None) -> ToolCall:
    """Build a `ToolCall` for a scripted AI message.

    Leave `id` unset to let `ScriptedChatModel` assign a deterministic one
    (`call_{turn}_{index}`), which is stable across processes.
    """
    return ToolCall(name=name, args=dict(args or {}), id=id, type="tool_call")


def ai(content: str = "", *calls: ToolCall) -> AIMessage:
    """Build a scripted `AIMessage` with optional text and tool calls.

    Example:
        `ai("", tool_call("lookup_order", {"order_id": "42"}))`
    """
    return AIMessage(content=content, tool_calls=list(calls))


def _whole(message: AIMessage) -> ChatResult:
    return ChatResult(generations=[ChatGeneration(message=message)])


def _chunks(message: AIMessage) -> Iterator[ChatGenerationChunk]:
    for chunk in wire.to_chunks(message):
        yield ChatGenerationChunk(message=chunk)


class ScriptedChatModel(BaseChatModel):
    """Chat model that replays a fixed script, for deterministic offline tests.

    A script is a sequence of steps. Each step is one of:

    - an `AIMessage`, returned as is (with or without `tool_calls`);
    - a `str`, returned as `AIMessage(content=...)`;
    - a callable `(messages) -> AIMessage | str`, called with the request's
      messages when its turn is served, for answers that depend on the input;
    - an exception instance or class, raised instead of answering.

    **Turns are indexed by the conversation, not by a call counter.** The
    non-exception steps are the script's *turns*, in order. A request whose
    messages already contain `k` `AIMessage`s is asking for turn `k`. So the
    answer depends only on the conversation: a fresh instance (for example in
    another process, resuming a checkpointed run after a crash) asked for the
    same conversation gives the same answer, and the script carries on from
    where the run is.

    **Exception steps belong to the turn that follows them.** For turn `k`, the
    exceptions listed immediately before turn `k`'s step are raised, in order,
    on the first attempts of that turn made by *this instance*; the next attempt
    returns the turn's response. With `[TimeoutError("x"), "done"]`, the first
    call raises `TimeoutError("x")` and a retry with the same conversation
    returns `"done"`. Attempts are counted in memory, so a new instance raises
    the exceptions again: a fault simulates a transient failure as seen by one
    process. Exceptions after the last turn are raised when the conversation
    asks for the turn after the last one; once they are used up, that turn
    raises `ScriptExhausted` like any turn past the end of the script.
    Exception classes are instantiated with no arguments when raised.

    Responses are fresh copies, so the scripted messages are never mutated.
    Each response gets:

    - deterministic ids `call_{turn}_{index}` for tool calls scripted without
      one, so ids agree across processes;
    - deterministic `usage_metadata` (about four characters per token) unless
      the scripted message already has some;
    - `response_metadata["model_name"]`, unless the scripted message sets it.

    Every request is recorded in `calls`; `assert_complete()` checks that every
    turn was served. Tools bound with `bind_tools` are recorded per call but do
    not change the answer. Streaming yields the text in word-sized chunks and
    each tool call as a `tool_call_chunks` entry; the chunks add up to the
    non-streamed response's content, tool calls, usage and response metadata.
    The model is safe to call from several threads.

    **Latency.** With ``latency=s`` every answer (and every scripted fault) takes ``s``
    seconds, as a remote provider's does: a synchronous call blocks its thread with
    `time.sleep`, as a sync HTTP client would, and an asynchronous one awaits
    `asyncio.sleep`, so the event loop serves others meanwhile. A stream waits before its
    first chunk. Use it to see how a runtime behaves with slow models (benchmarks, timeouts);
    the default, 0, never sleeps.
    """

    steps: Annotated[tuple[Step, ...], SkipValidation]
    """The script, as given (validated by this class, not by pydantic)."""

    model_name: str = "scripted"
    """Reported in `response_metadata` and the identifying parameters; a runtime looks its
    price up by this name, so name a priced model (or pass prices=) to test cost limits."""

    max_tokens: int | None = None
    """Output cap, as a provider model has one. A call bound with ``max_tokens`` overrides
    it. An answer longer than the cap reports the cap as its output tokens and
    ``finish_reason="length"``, as a provider that truncates would (the text is kept)."""

    latency: float = 0.0
    """Seconds each call takes before it answers (or raises), like a provider's round trip;
    0 answers at once. Sync calls ``time.sleep``, async calls ``asyncio.sleep``."""

    def __repr_args__(self) -> Any:
        # The script by its length: LangChain keeps a model it cannot serialize as its repr,
        # made at the model's first call, and a whole script's cost 10 ms at 20 turns and
        # 93 at 200 (pydantic's repr of every message), paid in each test's first call.
        return [(k, f"<{len(v)} steps>" if k == "steps" else v) for k, v in super().__repr_args__()]

    _turns: tuple[_Turn, ...] = PrivateAttr(default=())
    _trailing_faults: tuple[tuple[int, Fault], ...] = PrivateAttr(default=())
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _attempts: dict[int, int] = PrivateAttr(default_factory=dict)
    _served: set[int] = PrivateAttr(default_factory=set)
    _calls: list[ScriptedCall] = PrivateAttr(default_factory=list)

    def __init__(
        self, steps: Sequence[Step], *, model_name: str = "scripted", **kwargs: Any
    ) -> None:
        """Create a model that follows `steps`; see the class docstring."""
        # Pydantic models take fields as keywords only; this wrapper exists so
        # the script can be passed positionally.
        kwargs.update(steps=steps, model_name=model_name)
        super().__init__(**kwargs)

    @field_validator("steps", mode="before")
    @classmethod
    def _steps_as_tuple(cls, steps: Any) -> tuple[Any, ...]:
        # A bare string is a Sequence too; splitting it into one-character
        # steps would be a confusing silent mistake.
        if isinstance(steps, str | bytes) or not isinstance(steps, Sequence):
            msg = f"steps must be a sequence of steps, got {type(steps).__name__}"
            raise TypeError(msg)
        return tuple(steps)

    @field_validator("latency", mode="before")
    @classmethod
    def _latency_in_seconds(cls, latency: Any) -> float:
        if (
            isinstance(latency, bool)
            or not isinstance(latency, int | float)
            or not math.isfinite(latency)
            or latency < 0
        ):
            msg = f"latency must be a finite number of seconds >= 0, got {latency!r}"
            raise ValueError(msg)
        return float(latency)

    @model_validator(mode="after")
    def _compile_script(self) -> Self:
        """Split the steps into turns and the faults that precede each one."""
        turns: list[_Turn] = []
        pending: list[tuple[int, Fault]] = []
        for index, step in enumerate(self.steps):
            if _is_fault(step):
                pending.append((index, step))
            elif isinstance(step, AIMessage | str) or callable(step):
                turns.append(_Turn(index, step, tuple(pending)))
                pending = []
            else:
                msg = (
                    f"step {index} must be an AIMessage, a str, a callable or an "
                    f"exception, got {type(step).__name__}: {_short_repr(step)}"
                )
                raise TypeError(msg)
        self._turns = tuple(turns)
        self._trailing_faults = tuple(pending)
        return self

    @property
    def _llm_type(self) -> str:
        return "scripted"

    @property
    def _identifying_params(self) -> Mapping[str, Any]:
        return {"model_name": self.model_name}

    @property
    def calls(self) -> list[ScriptedCall]:
        """Snapshot of every request made to this instance, oldest first."""
        with self._lock:
            return list(self._calls)

    @property
    def served_turns(self) -> frozenset[int]:
        """Snapshot of the turns this instance has answered at least once."""
        with self._lock:
            return frozenset(self._served)

    def assert_complete(self) -> None:
        """Fail unless this instance answered every turn of the script.

        Raises:
            AssertionError: naming each turn (and its step index) never served.
        """
        served = self.served_turns
        missing = [(turn, t.step_index) for turn, t in enumerate(self._turns) if turn not in served]
        if missing:
            listed = ", ".join(f"turn {turn} (step {step})" for turn, step in missing)
            msg = (
                f"{len(missing)} of {len(self._turns)} scripted turns were never "
                f"served by this model: {listed}. The code under test stopped "
                "calling the model earlier than the script expects."
            )
            raise AssertionError(msg)

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Offer tools to the model, as a provider model would.

        The returned runnable calls this instance, so the script and `calls`
        are shared. The tools are recorded per call but never change the answer.
        """
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def _answer(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> procedure.Steps[AIMessage]:
        """The scripted answer to ``messages``, once the model's latency has passed.

        The one procedure behind LangChain's four hooks: whole or streamed, sync or async.
        Async, the latency is awaited on the loop: answering never blocks, so there is no
        point in a worker thread.
        """
        if self.latency:
            yield procedure.Step(
                partial(time.sleep, self.latency), partial(asyncio.sleep, self.latency)
            )
        return self._respond(messages, kwargs.get("tools"), kwargs.get("max_tokens"))

    # LangChain's hooks, each driving the one procedure: in the caller's thread, or on the
    # running loop; the answer whole, or in the chunks a provider streams.

    def _generate(self, *args: Any, **kwargs: Any) -> ChatResult:
        return _whole(procedure.drive(self._answer(*args, **kwargs)))

    async def _agenerate(self, *args: Any, **kwargs: Any) -> ChatResult:
        return _whole(await procedure.adrive(self._answer(*args, **kwargs)))

    def _stream(self, *args: Any, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        yield from _chunks(procedure.drive(self._answer(*args, **kwargs)))

    async def _astream(self, *args: Any, **kwargs: Any) -> AsyncIterator[ChatGenerationChunk]:
        for chunk in _chunks(await procedure.adrive(self._answer(*args, **kwargs))):
            yield chunk

    def get_num_tokens_from_messages(
        self, messages: list[BaseMessage], tools: Sequence[Any] | None = None
    ) -> int:
        """The input tokens this model will report for ``messages``: counts agree exactly."""
        return wire.input_tokens(messages)

    def _respond(
        self, messages: list[BaseMessage], tools: Any, max_tokens: int | None = None
    ) -> AIMessage:
        """Serve or raise the step for the turn the conversation asks for."""
        cap = max_tokens if max_tokens is not None else self.max_tokens
        turn = sum(isinstance(m, AIMessage) for m in messages)
        snapshot = keep(messages)
        tool_names = wire.tool_names(tools)
        scripted = self._turns[turn] if turn < len(self._turns) else None
        if scripted is not None:
            faults = scripted.faults
        elif turn == len(self._turns):
            faults = self._trailing_faults
        else:
            faults = ()

        with self._lock:
            attempt = self._attempts.get(turn, 0)
            self._attempts[turn] = attempt + 1

        def record(step_index: int, outcome: AIMessage | BaseException) -> None:
            with self._lock:
                self._calls.append(
                    recorded(
                        snapshot,
                        tool_names=tool_names,
                        turn=turn,
                        step_index=step_index,
                        outcome=outcome,
                        max_tokens=cap,
                    )
                )
                if isinstance(outcome, AIMessage):
                    self._served.add(turn)

        if attempt < len(faults):
            step_index, fault = faults[attempt]
            error = fault() if isinstance(fault, type) else fault
            record(step_index, error)
            # A scripted exception object may be raised again by another
            # instance; drop the old traceback so it shows only this raise.
            raise error.with_traceback(None)
        if scripted is None:
            exhausted = self._exhausted(turn, messages)
            record(len(self.steps), exhausted)
            raise exhausted
        try:
            # Callable steps are user code: run them outside the lock so they
            # may themselves call the model.
            message = wire.capped(self._render(scripted, turn, messages), cap)
        except Exception as exc:
            record(scripted.step_index, exc)
            raise
        record(scripted.step_index, message)
        # LangChain mutates what it gets back (e.g. assigning a run id); keep
        # the recorded outcome exactly as the script produced it.
        return message.model_copy(deep=True)

    def _render(self, scripted: _Turn, turn: int, messages: list[BaseMessage]) -> AIMessage:
        """Turn a response step into a fresh, fully populated AIMessage."""
        response = scripted.response
        if not isinstance(response, AIMessage | str):
            response = response(list(messages))
            if not isinstance(response, AIMessage | str):
                msg = (
                    f"step {scripted.step_index} returned "
                    f"{type(response).__name__}; a callable step must return "
                    "an AIMessage or a str"
                )
                raise TypeError(msg)
        if isinstance(response, str):
            message = AIMessage(content=response)
        else:
            message = response.model_copy(deep=True)

        message.tool_calls = [
            {**call, "id": call.get("id") or f"call_{turn}_{i}"}
            for i, call in enumerate(message.tool_calls)
        ]
        message.response_metadata = {
            "model_name": self.model_name,
            **message.response_metadata,
        }
        if message.usage_metadata is None:
            message.usage_metadata = wire.usage(messages, message)
        return message

    def _exhausted(self, turn: int, messages: list[BaseMessage]) -> ScriptExhausted:
        last = _short_repr(messages[-1]) if messages else "<no messages>"
        return ScriptExhausted(
            f"ScriptedChatModel script exhausted: the conversation asks for turn "
            f"{turn} (it holds {turn} AI messages) but the script has "
            f"{len(self._turns)} turns ({len(self.steps)} steps). Last message of "
            f"the request: {last}. Add a step to the script if the code under "
            "test is right to call the model again."
        )


def _is_fault(step: object) -> TypeIs[Fault]:
    return isinstance(step, BaseException) or (
        isinstance(step, type) and issubclass(step, BaseException)
    )


def _short_repr(value: object) -> str:
    text = repr(value)
    if len(text) <= _REPR_LIMIT:
        return text
    return text[: _REPR_LIMIT - 3] + "..."
