"""The kinds only a live stream yields (``rt.stream``), never stored in a run's log: what
each holds, and its line for a person. ``agentrt.events`` says them with the log's kinds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal, NotRequired, TypeAlias, TypedDict

from agentrt.wording import join as _join
from agentrt.wording import json_text as _json
from agentrt.wording import text as _text
from agentrt.wording import word as _word

__all__ = [
    "LIVE_KINDS",
    "WARN_AT",
    "BudgetWarningData",
    "GateData",
    "StepData",
    "StreamKind",
    "TokenData",
    "ToolCallData",
    "ToolResultData",
]


class StepData(TypedDict):
    """A ``step_started`` or ``step_ended`` event: one node of the run graph."""

    node: str
    """The node: plan, policy, approval, tool, verify, commit, ..., finish."""
    error: NotRequired[str | None]
    """On ``step_ended``: what the node raised, if it did."""


class TokenData(TypedDict):
    """A ``token`` event: a piece of the model's answer as the chat model streams it."""

    text: str
    node: str


class ToolCallData(TypedDict):
    """A ``tool_call`` event: the tool or commit node is about to run this action."""

    tool: str
    args: dict[str, Any]
    call_id: str
    node: str


class ToolResultData(TypedDict):
    """A ``tool_result`` event: what the call gave back (the verify node judges it next)."""

    tool: str
    kind: str
    """ok, or the error's kind."""
    content: Any
    node: str


class GateData(TypedDict):
    """A ``gate`` event: the run stopped for a person; these requests wait for a decision."""

    approvals: list[dict[str, Any]]


class BudgetWarningData(TypedDict):
    """A ``budget_warning`` event: a limit is past ``WARN_AT`` of its value after a step."""

    limit: str
    """The Budget field, e.g. ``max_tool_calls``."""
    used: float
    max: float


WARN_AT = 0.8
"""The share of a budget limit past which a stream warns, once a limit."""

StreamKind: TypeAlias = Literal[
    "plan",
    "policy",
    "policy_changed",
    "approval",
    "observation",
    "finish",
    "step_started",
    "step_ended",
    "token",
    "tool_call",
    "tool_result",
    "gate",
    "budget_warning",
    "custom",
]
"""Every kind a stream yields: the log's kinds and the live ones."""


def _describe_step(data: Mapping[str, Any], step: str, width: int | None) -> str:
    said = _word(data.get("node"))
    if data.get("error"):
        said += f" raised {_text(data['error'], width)}"
    return _join("step", step, said)


def _describe_token(data: Mapping[str, Any], step: str, width: int | None) -> str:
    return f"token: {_text(data.get('text'), width)}"


def _describe_tool_call(data: Mapping[str, Any], step: str, width: int | None) -> str:
    args = _text(_json(data.get("args", {})), width)
    return _join("call", step, f"{_word(data.get('tool'))}({args})")


def _describe_tool_result(data: Mapping[str, Any], step: str, width: int | None) -> str:
    said = f"{_word(data.get('tool'))}: [{_word(data.get('kind'))}]"
    content = _text(_json(data.get("content")), width)
    return _join("returned", step, f"{said} {content}" if content else said)


def _describe_gate(data: Mapping[str, Any], step: str, width: int | None) -> str:
    asked = [a for a in data.get("approvals") or () if isinstance(a, Mapping)]
    said = ", ".join(f"{_word(a.get('tool'))} ({_word(a.get('id'))})" for a in asked)
    return f"gate: waits for a person on {said or '?'}"


def _describe_budget_warning(data: Mapping[str, Any], step: str, width: int | None) -> str:
    return f"budget: {_word(data.get('limit'))} at {data.get('used')} of {data.get('max')}"


def _describe_custom(data: Mapping[str, Any], step: str, width: int | None) -> str:
    return _join("custom", step, _text(_json(data), width))


LIVE_KINDS: Mapping[str, Callable[[Mapping[str, Any], str, int | None], str]] = {
    "step_started": lambda d, s, w: _describe_step(d, s, w).replace("step", "started", 1),
    "step_ended": lambda d, s, w: _describe_step(d, s, w).replace("step", "ended", 1),
    "token": _describe_token,
    "tool_call": _describe_tool_call,
    "tool_result": _describe_tool_result,
    "gate": _describe_gate,
    "budget_warning": _describe_budget_warning,
    "custom": _describe_custom,
}
"""The kinds only a stream yields, each with its line for a person."""
