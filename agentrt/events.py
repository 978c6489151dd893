"""The event log's vocabulary: what each kind of event holds, how it is made, how it reads.

A run's log (``RunState["events"]``) is a list of ``agentrt.state.Event``: a ``type``, an
optional ``step_id`` and a ``data`` dict, kept as plain JSON in the checkpoint so that a log
written by an earlier version reads back in this one. This module is the one place that
knows every kind:

- a TypedDict per kind for its ``data`` (``PlanData``, ``PolicyData``, ...);
- a constructor per kind (``plan_event``, ``policy_event``, ...), which the nodes use, so
  ``data`` is typed where it is built;
- ``describe(event)``: the event in one line of words for a person; the CLI, the review page
  and replay all say an event through it;
- ``as_messages(events)``: what a stretch of the log adds to the planner's conversation.

``KINDS`` ties them together; a test checks it against ``Event``'s ``type`` Literal, so a new
kind cannot be added without its type, constructor and description. Readers take events as
stored (or as masked for showing), so ``describe`` reads ``data`` defensively: a field an
older version did not write, or a value masking replaced, still reads as words.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NotRequired, TypeAlias, TypedDict, cast

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from agentrt.live_kinds import (
    LIVE_KINDS,
    WARN_AT,
    BudgetWarningData,
    GateData,
    StepData,
    StreamKind,
    TokenData,
    ToolCallData,
    ToolResultData,
)
from agentrt.state import Action, Event, Observation, ObservationKind, PolicyVerdict, RunStatus
from agentrt.wording import actions as _actions
from agentrt.wording import join as _join
from agentrt.wording import json_text as _json
from agentrt.wording import text as _text
from agentrt.wording import version as _version
from agentrt.wording import word as _word

__all__ = [
    "KINDS",
    "LIVE_KINDS",
    "WARN_AT",
    "ApprovalData",
    "BudgetWarningData",
    "FinishData",
    "GateData",
    "Kind",
    "MessageData",
    "ObservationData",
    "PlanData",
    "PolicyChangedData",
    "PolicyData",
    "StepData",
    "StreamEvent",
    "StreamKind",
    "TokenData",
    "ToolCallData",
    "ToolResultData",
    "approval_event",
    "as_messages",
    "describe",
    "finish_event",
    "message_event",
    "observation_event",
    "plan_event",
    "policy_changed_event",
    "policy_event",
]


# what each kind holds -----------------------------------------------------------------------


class PlanData(TypedDict):
    """A ``plan`` event: the model's answer to one plan step."""

    revision: int
    """The plan's number: the run's step count when the model was asked."""
    content: str
    """The model's text (with no actions: the final answer)."""
    actions: list[Action]
    """The tool calls it asked for, in order; empty for a final answer."""
    blocks: NotRequired[list[Any]]
    """The answer's content blocks as the model gave them (made storable), when they hold
    more than its text (a reasoning block and its signature): its turn goes back to it so.
    Absent otherwise, and in logs older versions wrote: the turn goes back as its text."""


PolicyData: TypeAlias = PolicyVerdict
"""A ``policy`` event: the policy's verdict on one action (step_id is the action's)."""


class PolicyChangedData(TypedDict):
    """A ``policy_changed`` event: this run's decisions now come from another policy version."""

    from_policy: str | None
    from_version: str | None
    to_policy: str
    to_version: str


class ApprovalData(TypedDict):
    """An ``approval`` event: a request at a human gate as decided (the approvals table's
    record as plain data, ``agentrt.nodes.common.public_request``)."""

    id: str
    thread_id: str
    step_id: str
    kind: Literal["action", "reconcile", "budget"]
    tool: str
    args: dict[str, Any]
    args_digest: str
    rule_id: str | None
    reason: str
    required_role: str | None
    four_eyes: bool
    requested_by: str
    tenant: str | None
    requested_at: float
    expires_at: float | None
    status: str
    """An ``ApprovalStatus`` value: approved, rejected, edited, expired, cancelled, ..."""
    decided_by: NotRequired[str | None]
    decided_at: NotRequired[float | None]
    comment: NotRequired[str | None]
    edited_args: NotRequired[dict[str, Any] | None]
    """For an edit: the arguments to run instead. For a budget raise: {limit: new value}."""
    result: NotRequired[Any]
    """For a reconcile resolved: the result the effect had."""
    required_roles: NotRequired[Sequence[str]]
    edited_by: NotRequired[str | None]
    edited_from: NotRequired[str | None]
    on_expiry: NotRequired[Literal["reject", "escalate"]]
    escalate_to: NotRequired[str | None]
    escalated_from: NotRequired[str | None]
    escalated_to: NotRequired[str | None]
    superseded: NotRequired[str | None]
    """Why a request a later message of the thread superseded was never carried out."""
    waited_seconds: NotRequired[float | None]


ObservationData: TypeAlias = Observation
"""An ``observation`` event: what the planner is told about one action."""


class FinishData(TypedDict):
    """A ``finish`` event: how the run ended."""

    status: str
    """A terminal ``RunStatus`` value."""
    output: str | None
    error: str | None


class MessageData(TypedDict):
    """A ``message`` event: a person's follow-up on the thread, which the planner answers next."""

    index: int
    """The message's place in the thread (1 for the first follow-up; 0 is the goal)."""
    text: str
    by: str | None
    """Who sent it (the principal's id)."""
    interrupted: NotRequired[int | None]
    """The message it interrupted, if it was sent to interrupt one."""


# making them ----------------------------------------------------------------------------------


def plan_event(
    revision: int, content: str, actions: Sequence[Action], *, blocks: list[Any] | None = None
) -> Event:
    """The model answered plan step ``revision`` with ``content`` and ``actions``; ``blocks``:
    its content blocks, when its text is not all of them."""
    data = PlanData(revision=revision, content=content, actions=[a.copy() for a in actions])
    if blocks is not None:
        data["blocks"] = blocks
    return Event(type="plan", data=dict(data))


def policy_event(verdict: PolicyVerdict) -> Event:
    """The policy's verdict on the action at ``verdict["step_id"]``."""
    return Event(type="policy", step_id=verdict["step_id"], data=dict(verdict))


def policy_changed_event(
    *, from_policy: str | None, from_version: str | None, to_policy: str, to_version: str
) -> Event:
    """The run's decisions come from ``to_policy@to_version`` now, no longer from the one
    before."""
    data = PolicyChangedData(
        from_policy=from_policy,
        from_version=from_version,
        to_policy=to_policy,
        to_version=to_version,
    )
    return Event(type="policy_changed", data=dict(data))


def approval_event(request: Mapping[str, Any]) -> Event:
    """A request at a human gate, as decided; ``request`` is its plain data (every field of
    ``ApprovalRequest``, its status as a string, and its waited_seconds)."""
    data = cast(ApprovalData, dict(request))  # the approvals table's record, as data
    return Event(type="approval", step_id=data["step_id"], data=dict(data))


def observation_event(observation: Observation) -> Event:
    """What the planner is told about the action at ``observation["step_id"]``."""
    return Event(type="observation", step_id=observation["step_id"], data=dict(observation))


def finish_event(status: RunStatus | str, output: str | None, error: str | None) -> Event:
    """The run ended in ``status``, with its output or its error."""
    data = FinishData(status=RunStatus(status).value, output=output, error=error)
    return Event(type="finish", data=dict(data))


def message_event(index: int, text: str, by: str | None, interrupted: int | None = None) -> Event:
    """A person sent message ``index`` on the thread (``interrupted``: the one it stopped)."""
    data = MessageData(index=index, text=text, by=by)
    if interrupted is not None:
        data["interrupted"] = interrupted
    return Event(type="message", data=dict(data))


# saying them --------------------------------------------------------------------------------


def describe(event: Mapping[str, Any], *, width: int | None = 80) -> str:
    """``event`` in one line of words for a person, e.g. "policy 2.0: require_approval
    (large-refunds: ...)".

    ``event`` is a stored event or one as shown (masked). Free text (the model's words, a
    result, a reason) is cut to ``width`` characters, each call's arguments to half that;
    ``width=None`` cuts nothing. A kind this version does not know still reads as its name
    and data.
    """
    kind = str(event.get("type"))
    data = event.get("data")
    data = data if isinstance(data, Mapping) else {}
    step = str(event.get("step_id") or "")
    found = KINDS.get(kind)
    if found is None:
        live = LIVE_KINDS.get(kind)
        if live is not None:
            return live(data, step, width)
        return _join(kind, step, _text(_json(data), width))
    return found.describe(data, step, width)


def _describe_plan(data: Mapping[str, Any], step: str, width: int | None) -> str:
    half = None if width is None else max(width // 2, 10)
    calls = ", ".join(
        f"{_word(a.get('tool'))}({_text(_json(a.get('args', {})), half)})" for a in _actions(data)
    )
    content = _text(data.get("content"), width)
    if not calls:
        said = f"answer: {content}" if content else "answer: (no text)"
    else:
        said = f"{content} -> {calls}" if content else calls
    return f"plan #{_word(data.get('revision'))}: {said}"


def _describe_policy(data: Mapping[str, Any], step: str, width: int | None) -> str:
    rule = data.get("rule_id")
    reason = _text(data.get("reason"), width)
    why = f"{rule}: {reason}" if rule else reason or "no rule"
    matched = ", ".join(str(m) for m in data.get("matched") or ()) or "none"
    policy = _version(data.get("policy"), data.get("policy_version"))
    outcome = _word(data.get("outcome"))
    return _join("policy", step, f"{outcome} ({why}) matched: {matched}; policy {policy}")


def _describe_policy_changed(data: Mapping[str, Any], step: str, width: int | None) -> str:
    before = _version(data.get("from_policy"), data.get("from_version"))
    after = _version(data.get("to_policy"), data.get("to_version"))
    return _join("policy changed", step, f"{before} -> {after}")


def _describe_approval(data: Mapping[str, Any], step: str, width: int | None) -> str:
    status = _word(data.get("status"))
    kind = data.get("kind") or "action"
    edited = data.get("edited_args")
    if kind == "budget":
        args = data.get("args")
        limit = args.get("limit") if isinstance(args, Mapping) else None
        raised = edited.values() if isinstance(edited, Mapping) else ()
        verdict = ", ".join(f"raised to {v}" for v in raised) or status
        said = f"budget {_word(limit)}: {verdict}"
    else:
        head = "reconcile" if kind == "reconcile" else "approval"
        said = _join(head, step, f"{_word(data.get('tool'))} {status}")
        if status == "edited" and edited is not None:
            said += f" to {_text(_json(edited), width)}"
    if data.get("decided_by"):
        said += f" by {data['decided_by']}"
    if data.get("comment"):
        said += f": {_text(data['comment'], width)}"
    return said


def _describe_observation(data: Mapping[str, Any], step: str, width: int | None) -> str:
    content = _text(data.get("content"), width)
    retries = data.get("retries")
    after = f" (after {retries} {'retry' if retries == 1 else 'retries'})" if retries else ""
    said = f"{_word(data.get('tool'))}: [{_word(data.get('kind'))}]{after}"
    return _join("result", step, f"{said} {content}" if content else said)


def _describe_finish(data: Mapping[str, Any], step: str, width: int | None) -> str:
    error = _text(data.get("error"), width)
    status = _word(data.get("status"))
    return _join("finish", step, f"{status}: {error}" if error else status)


def _describe_message(data: Mapping[str, Any], step: str, width: int | None) -> str:
    by = data.get("by")
    said = f"#{_word(data.get('index'))}" + (f" from {_word(by)}" if by else "")
    if data.get("interrupted") is not None:
        said += f" (interrupting #{_word(data.get('interrupted'))})"
    return _join("message", step, f"{said}: {_text(data.get('text'), width)}")


# the planner's conversation --------------------------------------------------------------------


def as_messages(events: Sequence[Event]) -> list[BaseMessage]:
    """The messages a stretch of the event log adds to the planner's conversation: a plan
    is the model's own turn, an observation answers its tool call, a message is the
    person's next turn on the thread; the other kinds are the runtime's business (the
    planner learns of a denial or a refusal by its observation)."""
    messages: list[BaseMessage] = []
    for event in events:
        if (kind := KINDS.get(event["type"])) is not None:
            messages += kind.messages(event["data"])
    return messages


def _plan_messages(data: Mapping[str, Any]) -> list[BaseMessage]:
    calls = [
        {"id": a["call_id"], "name": a["tool"], "args": a["args"], "type": "tool_call"}
        for a in data["actions"]
    ]
    # The model's own turn as it gave it: its blocks if kept (reasoning a provider wants
    # back with the calls), else its text.
    blocks = data.get("blocks")
    content = blocks if isinstance(blocks, list) and blocks else data["content"]
    return [AIMessage(content=content, tool_calls=calls)]


def _observation_messages(data: Mapping[str, Any]) -> list[BaseMessage]:
    kind = data["kind"]
    ok = kind == ObservationKind.OK
    return [
        ToolMessage(
            content=data["content"] if ok else f"[{kind}] {data['content']}",
            tool_call_id=data["call_id"],
            name=data["tool"],
            status="success" if ok else "error",
        )
    ]


def _message_messages(data: Mapping[str, Any]) -> list[BaseMessage]:
    return [HumanMessage(content=data["text"])]


def _no_messages(data: Mapping[str, Any]) -> list[BaseMessage]:
    return []


# the table ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Kind:
    """Everything this module knows about one kind of event."""

    data: type[Any]
    """The TypedDict of its ``data``."""
    make: Callable[..., Event]
    """Its constructor."""
    describe: Callable[[Mapping[str, Any], str, int | None], str]
    """Its line for a person: (data, step id or "", width)."""
    messages: Callable[[Mapping[str, Any]], list[BaseMessage]] = _no_messages
    """What it adds to the planner's conversation; by default nothing (the runtime's own
    business, see ``as_messages``)."""


KINDS: Mapping[str, Kind] = {
    "plan": Kind(data=PlanData, make=plan_event, describe=_describe_plan, messages=_plan_messages),
    "policy": Kind(data=PolicyData, make=policy_event, describe=_describe_policy),
    "policy_changed": Kind(
        data=PolicyChangedData, make=policy_changed_event, describe=_describe_policy_changed
    ),
    "approval": Kind(data=ApprovalData, make=approval_event, describe=_describe_approval),
    "observation": Kind(
        data=ObservationData,
        make=observation_event,
        describe=_describe_observation,
        messages=_observation_messages,
    ),
    "finish": Kind(data=FinishData, make=finish_event, describe=_describe_finish),
    "message": Kind(
        data=MessageData,
        make=message_event,
        describe=_describe_message,
        messages=_message_messages,
    ),
}
"""Every kind of event, by its ``type``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamEvent:
    """One thing a run did, as it happened (``rt.stream``); a log kind is its log entry."""

    thread_id: str
    """The run it belongs to."""
    type: StreamKind
    """What happened: a log kind (plan, policy, ...) or a live one (token, gate, ...)."""
    data: Mapping[str, Any]
    """Its content, typed per kind (PlanData, TokenData, GateData, ...)."""
    step_id: str | None = None
    """The plan step it is about, if any."""
    index: int | None = None
    """For a log kind: its place in the run's log, as ``rt.events`` numbers it (the
    service's event ids); None for a live kind."""

    def to_dict(self) -> dict[str, Any]:
        """As plain data, shaped as a log entry with the thread id besides."""
        return {
            "thread_id": self.thread_id,
            "type": self.type,
            "step_id": self.step_id,
            "data": dict(self.data),
        }

    def describe(self, *, width: int | None = 80) -> str:
        """The event in one line of words, as ``describe`` says a log entry."""
        return describe(self.to_dict(), width=width)
