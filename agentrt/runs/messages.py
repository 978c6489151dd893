"""Threads that go on: a follow-up message continues a finished thread with its history.

A thread's first message is the goal it was started with (message 0); each follow-up is
kept in the store's messages table, queued until the thread takes it. Taking one is one
conditional write (``MessageStore.open_message``): the message before it is closed with
how it ended and what it spent, the run moves to running at the new message, leased to
whoever takes it. The graph then runs again from its start with the message appended to
the run's log, so the planner sees the whole conversation (``events.as_messages``): the
goal, every turn since, each follow-up as the person's next turn.

A message that comes while the thread is at work or waiting at a gate (double-texting)
is handled by the policy in force (``DoubleTexting``):

- reject: ThreadBusy; nothing is kept.
- enqueue: kept queued; whoever drives the thread next takes it once the current message
  has ended (the process that drives it, a worker that claims it, ``rt.resume``).
- interrupt: kept queued to interrupt. The run stops before its next safe node (plan,
  policy, approval, budget gate, summarize: never between an effect and its verification)
  and takes the message; a thread waiting at an approval or budget gate has its pending
  requests cancelled as superseded, and the tool calls the model asked for and that never
  ran are told to the planner as skipped. A thread waiting at a reconcile gate (an effect
  in doubt) is not interrupted: the message waits until a person settles it.

Usage is kept per thread (the run's usage, across every message) and per message (what
it spent since it was taken). A message's own budget binds its spending alone: its
limits are moved onto the thread's running totals and layered under the thread's, so
whichever is tighter stops it, and a limit it set trips as its own on_exceed and
approver_role say (agentrt.message_budget).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from agentrt.approvals.model import ApprovalQuery, ApprovalStatus
from agentrt.budget import Budget, empty_usage
from agentrt.errors import ConfigError
from agentrt.events import message_event, observation_event
from agentrt.message_budget import message_budget, message_limits
from agentrt.principal import Principal
from agentrt.records import LeaseRecord, MessageOpening, MessageRecord, RunRecord
from agentrt.state import TERMINAL, Event, Observation, ObservationKind, RunState, RunStatus, Usage
from agentrt.store.protocols import Store

__all__ = [
    "INTERRUPTED",
    "INTERRUPT_BEFORE",
    "DoubleTexting",
    "ThreadMessage",
    "check_double_texting",
    "check_message_budget",
    "goal_message",
    "message_input",
    "message_limits",
    "message_seen",
    "opening_for",
    "spent_since",
    "thread_messages",
]


class DoubleTexting(StrEnum):
    """What a message that comes while its thread is busy does (see the module's doc);
    ``send`` and ``AgentRuntime`` take the member or its value."""

    REJECT = "reject"
    """ThreadBusy; nothing is kept."""
    ENQUEUE = "enqueue"
    """Kept, and answered once the current message has ended."""
    INTERRUPT = "interrupt"
    """Kept; the current message stops at its next safe point and this one is taken."""


INTERRUPT_BEFORE = frozenset({"plan", "policy", "approval", "budget_gate", "summarize"})
"""The nodes a run may be interrupted before: each starts from a settled state (every
effect done is verified and told to the planner; the next one has not begun)."""

INTERRUPTED = "interrupted"
"""How a message stopped by the next one ended."""


def check_double_texting(value: object) -> DoubleTexting:
    """``value`` as a DoubleTexting policy; ConfigError naming the choices otherwise."""
    choices = [d.value for d in DoubleTexting]
    if isinstance(value, str) and value in choices:
        return DoubleTexting(value)
    raise ConfigError(f"double_texting must be one of {choices!r}, got {value!r}")


@dataclass(frozen=True, kw_only=True, slots=True)
class ThreadMessage:
    """One message of a thread as a caller sees it (``rt.messages(thread_id)``)."""

    thread_id: str
    index: int
    """Its place in the thread: 0 is the goal it was started with, then each follow-up."""
    text: str
    principal: Principal
    """Who sent it; the run acts for them while it answers."""
    status: str
    """queued; for the message being answered, the run's status; once answered, how it
    ended (a terminal run status, or interrupted: a later message stopped it)."""
    output: str | None
    """Its answer, once it has one."""
    error: str | None
    usage: Usage
    """What answering it spent (tokens, cost, tool calls, steps, active time)."""
    budget: Budget | None
    """Its own limits, if it was sent with any (the thread's apply besides)."""
    interrupt: bool
    """Sent to interrupt the message before it."""
    created_at: float
    started_at: float | None
    ended_at: float | None

    def to_dict(self) -> dict[str, Any]:
        """As plain JSON data (the service's answer)."""
        return {
            "thread_id": self.thread_id,
            "index": self.index,
            "text": self.text,
            "principal": self.principal.to_dict(),
            "status": self.status,
            "output": self.output,
            "error": self.error,
            "usage": dict(self.usage),
            "budget": self.budget.to_dict() if self.budget is not None else None,
            "interrupt": self.interrupt,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
        }


def spent_since(now: Usage, before: Usage | None) -> Usage:
    """What was spent between two readings of a thread's usage."""
    base = before or empty_usage()
    return Usage(
        input_tokens=now["input_tokens"] - base["input_tokens"],
        output_tokens=now["output_tokens"] - base["output_tokens"],
        cost_usd=round(now["cost_usd"] - base["cost_usd"], 10),
        tool_calls=now["tool_calls"] - base["tool_calls"],
        steps=now["steps"] - base["steps"],
        active_seconds=max(0.0, now["active_seconds"] - base["active_seconds"]),
    )


def check_message_budget(own: Budget, thread: Budget) -> None:
    """ConfigError for a message's budget whose ``on_exceed`` or ``approver_role`` would
    answer nothing: they answer for the limits the message sets (the thread's keep the
    thread's), so they need one, and a role needs limits that ask."""
    said = {k: v for k in ("on_exceed", "approver_role") if (v := getattr(own, k)) is not None}
    if said and not own.limits():
        shown = ", ".join(f"{k}={v!r}" for k, v in said.items())
        raise ConfigError(
            f"the message's budget sets {shown} but no limit of its own; they answer for the "
            "limits the message sets (the thread's limits keep the thread's answer): add a "
            "limit, e.g. Budget(max_tool_calls=5, on_exceed='stop'), or leave them out"
        )
    asks = (own.on_exceed or thread.on_exceed) == "ask"
    if own.approver_role is not None and not asks:
        raise ConfigError(
            f"the message's budget sets approver_role={own.approver_role!r}, but its limits "
            f"stop the message (on_exceed={own.on_exceed or thread.on_exceed or 'stop'!r}), "
            "so no one is asked; add on_exceed='ask', or leave approver_role out"
        )


def opening_for(
    store: Store,
    record: RunRecord,
    values: RunState,
    *,
    index: int,
    lease: LeaseRecord,
    now: float,
) -> MessageOpening:
    """The write that makes queued message ``index`` the thread's current one, worked out
    from the run's row and its latest checkpoint (``values``)."""
    usage_now = values.get("usage") or record.usage
    finished = record.status in TERMINAL
    kept = {m.index: m for m in store.thread_messages(record.thread_id)}
    current = kept.get(record.message)
    first = goal_message(record) if record.message == 0 and 0 not in kept else None
    before = current.usage_before if current is not None else None
    gate = record.status is RunStatus.AWAITING_APPROVAL
    return MessageOpening(
        from_status=record.status,
        from_message=record.message,
        index=index,
        closing=record.status.value if finished else INTERRUPTED,
        output=record.output if finished else None,
        error=record.error if finished else f"interrupted by message #{index}",
        ended_at=record.updated_at if finished else None,
        spent=spent_since(usage_now, before),
        first=first,
        usage_before=usage_now,
        lease=lease,
        add_waited=max(0.0, now - record.updated_at) if gate else 0.0,
        cancel_pending=None if finished else f"superseded by message #{index}",
        supersede=_given_at_gate(store, record, values) if gate else (),
    )


def _given_at_gate(store: Store, record: RunRecord, values: RunState) -> tuple[str, ...]:
    """The approvals given for the actions of the gate the run stands at and not acted on
    yet: a message that interrupts the gate supersedes them, as it does the pending ones."""
    plan, cursor = values.get("plan"), values.get("cursor", 0)
    if not plan or cursor >= len(plan["actions"]):
        return ()
    at = {plan["actions"][cursor]["step_id"]}
    gate = values.get("gate") or []
    if gate and gate[0]["action"]["step_id"] in at:
        at |= {item["action"]["step_id"] for item in gate}
    given = (ApprovalStatus.APPROVED, ApprovalStatus.EDITED)
    return tuple(
        r.id
        for r in store.list_approvals(ApprovalQuery(thread_id=record.thread_id, status=None))
        if r.step_id in at and r.status in given and r.id != values.get("answered")
    )


def message_input(
    message: MessageRecord, thread_budget: Budget, values: RunState, *, interrupted: int | None
) -> dict[str, Any]:
    """What the graph is given to answer ``message``: a fresh start from its first node,
    on the run's log (the conversation so far) with the message appended, acting for its
    sender under its limits."""
    own = Budget.from_dict(message.budget) if message.budget is not None else None
    before = message.usage_before or values.get("usage") or empty_usage()
    principal = Principal.from_dict(message.principal)
    events: list[Event] = [*_skipped(values, message.index)]
    events.append(message_event(message.index, message.text, principal.id, interrupted))
    return {
        "status": RunStatus.RUNNING.value,
        "principal": message.principal,
        "budget": message_limits(thread_budget, own, before).to_dict(),
        "message": message.index,
        "message_budget": message_budget(thread_budget, own, before),
        "plan": None,
        "cursor": 0,
        "verdict": None,
        "gate": None,
        "outcome": None,
        "output": None,
        "error": None,
        "stop": None,
        "over_budget": None,
        "checking": "",
        "rechecks": 0,
        "events": events,
    }


def _skipped(values: RunState, index: int) -> list[Event]:
    """An observation for each tool call of the last plan that was never answered (the
    run stopped before it: interrupted, out of budget, cancelled): every call the model
    made is answered before the next turn, as a model's API requires."""
    plan = values.get("plan")
    if not plan or not plan["actions"]:
        return []
    answered = {
        e["data"].get("call_id") for e in values.get("events", ()) if e["type"] == "observation"
    }
    return [
        observation_event(
            Observation(
                step_id=action["step_id"],
                call_id=action["call_id"],
                tool=action["tool"],
                kind=ObservationKind.SKIPPED.value,
                content=f"not done: the person sent a new message (#{index}) before it ran",
            )
        )
        for action in plan["actions"]
        if action["call_id"] not in answered
    ]


def thread_messages(store: Store, record: RunRecord) -> list[ThreadMessage]:
    """Every message of the thread, in order, as a caller sees it: the kept ones, with the
    current one's figures read from the run's row (message 0 from the row alone until the
    thread first goes on)."""
    kept = store.thread_messages(record.thread_id)
    for _ in range(3):
        current = next((m for m in kept if m.status == "current"), None)
        if current is None or current.index == record.message:
            break
        # The row and the messages were read either side of a message's opening: the
        # current one's figures would be another message's (its output, its end). Again.
        fresh = store.get_run(record.thread_id)
        if fresh is None:
            break
        record, kept = fresh, store.thread_messages(record.thread_id)
    if not kept or kept[0].index != 0:
        kept = [goal_message(record), *kept]
    return [message_seen(m, record) for m in kept]


def goal_message(record: RunRecord) -> MessageRecord:
    """Message 0, the goal the thread was started with, as its row holds it: kept in the
    messages table only once the thread first goes on."""
    return MessageRecord(
        thread_id=record.thread_id,
        index=0,
        text=record.goal,
        principal=record.principal,
        status="current",
        created_at=record.created_at,
        usage_before=empty_usage(),
        started_at=record.created_at,
    )


def message_seen(message: MessageRecord, record: RunRecord) -> ThreadMessage:
    """One kept message as a caller sees it, the current one's figures read from
    ``record``, its thread's row."""
    live = message.status == "current"
    if live:
        status, output, error = record.status.value, record.output, record.error
        usage = spent_since(record.usage, message.usage_before)
        ended = record.updated_at if record.status in TERMINAL else None
    else:
        status, output, error = message.status, message.output, message.error
        usage = message.usage or empty_usage()
        ended = message.ended_at
    return ThreadMessage(
        thread_id=message.thread_id,
        index=message.index,
        text=message.text,
        principal=Principal.from_dict(message.principal),
        status=status,
        output=output,
        error=error,
        usage=usage,
        budget=Budget.from_dict(message.budget) if message.budget is not None else None,
        interrupt=message.interrupt,
        created_at=message.created_at,
        started_at=message.started_at,
        ended_at=ended,
    )
