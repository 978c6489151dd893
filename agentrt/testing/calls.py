"""What a `ScriptedChatModel` records of each call: the messages it was given, kept pickled.

A run calls its model with the whole conversation each time, so copies of it kept as
objects at every call grew with the square of the run, and every full collection of the
garbage collector walked them (300 concurrent 5-action runs: about 15 ms of CPU a run).
Kept pickled, a call's messages are one bytes object, made anew at each read.
"""

from __future__ import annotations

import copy
import pickle
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage

__all__ = ["ScriptedCall", "keep", "recorded"]


class ScriptedCall:
    """Record of one request made to a `ScriptedChatModel`, for assertions.

    The messages are kept pickled, and made anew at each read of ``messages``: a run calls
    its model with the whole conversation each time, so copies kept as objects grew with
    the square of the run, and every full collection of the garbage collector walked them.
    """

    __slots__ = ("_kept", "max_tokens", "outcome", "step_index", "tool_names", "turn")

    tool_names: tuple[str, ...]
    """Names of the tools offered to the model for this call, in bind order."""

    turn: int
    """The turn asked for: the number of AI messages already in `messages`."""

    step_index: int
    """Index into the script's steps of the step served or raised.

    Equal to `len(steps)` when the call raised `ScriptExhausted`, since no step
    was involved.
    """

    outcome: AIMessage | BaseException
    """The response produced by the script, or the exception raised."""

    max_tokens: int | None
    """The output cap the call asked for (bound with ``bind(max_tokens=...)``), if any."""

    _kept: bytes | tuple[BaseMessage, ...]

    def __init__(  # noqa: PLR0917  # positional in the record's order, as it always was
        self,
        messages: Sequence[BaseMessage],
        tool_names: tuple[str, ...],
        turn: int,
        step_index: int,
        outcome: AIMessage | BaseException,
        max_tokens: int | None = None,
    ) -> None:
        for name, value in (
            ("_kept", keep(messages)),
            ("tool_names", tool_names),
            ("turn", turn),
            ("step_index", step_index),
            ("outcome", outcome),
            ("max_tokens", max_tokens),
        ):
            object.__setattr__(self, name, value)

    @property
    def messages(self) -> tuple[BaseMessage, ...]:
        """Copies of the messages the model was called with, as they were then."""
        held = self._kept
        return pickle.loads(held) if isinstance(held, bytes) else copy.deepcopy(held)

    def _fields(self) -> tuple[Any, ...]:
        return (
            self.messages,
            self.tool_names,
            self.turn,
            self.step_index,
            self.outcome,
            self.max_tokens,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ScriptedCall):
            return NotImplemented
        return self._fields() == other._fields()

    __hash__ = None  # type: ignore[assignment]  # equal by value, as a dataclass of lists

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"a ScriptedCall is a record; {name!r} cannot be set")

    def __reduce__(self) -> tuple[Any, ...]:
        # Copied and pickled as it is kept (copy.copy, copy.deepcopy, pickle): a record
        # made again from its messages kept, never through __setattr__.
        return _recorded_again, (
            self._kept,
            self.tool_names,
            self.turn,
            self.step_index,
            self.outcome,
            self.max_tokens,
        )

    def __repr__(self) -> str:
        return (
            f"ScriptedCall(messages={self.messages!r}, tool_names={self.tool_names!r}, "
            f"turn={self.turn!r}, step_index={self.step_index!r}, outcome={self.outcome!r}, "
            f"max_tokens={self.max_tokens!r})"
        )


def keep(messages: Sequence[BaseMessage]) -> bytes | tuple[BaseMessage, ...]:
    """``messages`` as a call keeps them: pickled (one bytes object, which the collector
    never walks), or deep copies where a message holds something pickle cannot take."""
    try:
        return pickle.dumps(tuple(messages), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # a content part of the app's own making: kept as objects
        return tuple(m.model_copy(deep=True) for m in messages)


def _recorded_again(kept: bytes | tuple[BaseMessage, ...], *fields: Any) -> ScriptedCall:
    """A record as ``ScriptedCall.__reduce__`` gave it."""
    names = ("tool_names", "turn", "step_index", "outcome", "max_tokens")
    return recorded(kept, **dict(zip(names, fields, strict=True)))


def recorded(kept: bytes | tuple[BaseMessage, ...], **fields: Any) -> ScriptedCall:
    """A call's record from messages kept already (at the call, before any step ran)."""
    call = ScriptedCall((), **fields)
    object.__setattr__(call, "_kept", kept)
    return call
