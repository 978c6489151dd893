"""A follow-up message's own budget: the limits it makes, and whose limit tripped.

A message sent with ``budget=`` runs under the thread's limits and its own, whichever is
tighter. Its own are counted from what the thread had spent when it was taken, so they
are moved onto the thread's running totals and the nodes check one budget
(``RunState.budget``); the budget it was sent with is kept beside it
(``RunState.message_budget``). When a limit trips, the one that binds says what happens:
a limit the message set (strictly tighter than the thread's) is answered by the
message's ``on_exceed`` and ``approver_role`` (each inherited from the thread's when
left out), is reported as its sender set it ("message #1's budget limit
max_tool_calls=1"), and a person raising it raises the message's limit alone; a limit of
the thread's is the thread's, as on the thread's first message. On a tie the thread's
binds: raising the message's alone would not let it go on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from agentrt.budget import Budget, raised_budget, tokens_used
from agentrt.errors import BudgetExceeded
from agentrt.state import MessageBudget, RunState, Usage

__all__ = ["as_set", "message_budget", "message_limits", "own_limit", "raised"]

_USED: dict[str, Callable[[Usage], float]] = {
    "max_tokens": tokens_used,
    "max_cost_usd": lambda u: u["cost_usd"],
    "max_tool_calls": lambda u: u["tool_calls"],
    "max_steps": lambda u: u["steps"],
    "max_active_seconds": lambda u: u["active_seconds"],
}


def message_limits(thread: Budget, own: Budget | None, before: Usage) -> Budget:
    """The limits a message runs under, on the thread's running totals (which the nodes
    check): the thread's, and the message's own moved past what the thread had spent when
    the message was taken, whichever is tighter. ``on_exceed`` and ``approver_role`` stay
    the thread's: whose limit tripped says which answer (``own_limit``)."""
    if own is None:
        return thread
    tighter: dict[str, Any] = {}
    for name, used in _USED.items():
        mine = getattr(own, name)
        if mine is None:
            continue
        moved = used(before) + mine
        theirs = getattr(thread, name)
        tighter[name] = moved if theirs is None else min(theirs, moved)
    if own.deadline is not None:
        tighter["deadline"] = min(own.deadline, thread.deadline or own.deadline)
    return replace(thread, **tighter)


def message_budget(thread: Budget, own: Budget | None, before: Usage) -> MessageBudget | None:
    """What the state keeps of a message's budget (None: it was sent without one)."""
    if own is None:
        return None
    return MessageBudget(own=own.to_dict(), thread=thread.to_dict(), before=before)


def own_limit(state: RunState, limit: str) -> Budget | None:
    """The current message's own budget if ``limit`` is one it set and it binds (strictly
    tighter than the thread's); None if the limit is the thread's."""
    kept = state.get("message_budget")
    if kept is None:
        return None
    own = Budget.from_dict(kept["own"])
    mine = getattr(own, limit, None)
    if mine is None:
        return None
    moved = mine if limit == "deadline" else _USED[limit](kept["before"]) + mine
    theirs = getattr(Budget.from_dict(kept["thread"]), limit)
    return own if theirs is None or moved < theirs else None


def as_set(state: RunState, exceeded: BudgetExceeded) -> BudgetExceeded:
    """``exceeded`` (on the thread's running totals) as the message's sender set the
    limit: its own value, and what the message spent of it."""
    kept = state.get("message_budget")
    own = own_limit(state, exceeded.limit)
    if kept is None or own is None or exceeded.limit == "deadline":
        return exceeded  # a deadline is a time, the same for the message and the thread
    used = exceeded.used - _USED[exceeded.limit](kept["before"])
    return BudgetExceeded(
        exceeded.limit,
        round(used, 10),  # money adds up with rounding error
        getattr(own, exceeded.limit),
        requested=exceeded.requested,
    )


def raised(state: RunState, limit: str, value: Any) -> tuple[Budget, Budget, MessageBudget | None]:
    """After a person raised ``limit`` to ``value``: the limits the run goes on under, the
    thread's budget (its row's), and what the state keeps of the message's. A limit the
    message set is raised for the message alone, counted from its start as it was set."""
    budget = Budget.from_dict(state.get("budget"))
    kept = state.get("message_budget")
    if kept is None:
        budget = raised_budget(budget, limit, value)
        return budget, budget, None
    own, thread = Budget.from_dict(kept["own"]), Budget.from_dict(kept["thread"])
    if own_limit(state, limit) is not None:
        own = raised_budget(own, limit, value)
    else:
        thread = raised_budget(thread, limit, value)
    before = kept["before"]
    return (
        message_limits(thread, own, before),
        thread,
        message_budget(thread, own, before),
    )
