"""Threads of an app's own graph, as runs: a row each, leased to the graph that drives it.

A thread of a user's StateGraph (or of a ``create_agent`` agent) gets a row in the runs
table like any run, so it shows in ``rt.runs``, the review queue, ``agentrt trace``, the
service and its page. Its lease names the graph (owner ``graph:<name>``) and never expires:
agentrt's workers and the service's start-up resume never drive it with the run graph, and
``rt.cancel`` asks it to stop at its next governed call. Its usage lives in the row (the
graph's state is the app's), its principal and budget too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from agentrt.approvals.model import ApprovalQuery, ApprovalStatus
from agentrt.errors import ConfigError, RunError, UnknownRun
from agentrt.records import RunRecord
from agentrt.runs import lifecycle
from agentrt.runs.lease import GRAPH_HOST, graph_lease, graph_name, is_own_graph
from agentrt.state import TERMINAL, RunState, RunStatus
from agentrt.store.protocols import Store

__all__ = [
    "GRAPH_HOST",
    "graph_lease",
    "graph_name",
    "is_own_graph",
    "live_record",
    "thread_id_of",
    "thread_state",
    "to_running",
]


def thread_id_of(config: Mapping[str, Any] | None) -> str:
    """The thread id of the graph call ``config`` belongs to; ConfigError without one."""
    configurable = (config or {}).get("configurable") or {}
    thread_id = configurable.get("thread_id")
    if not isinstance(thread_id, str) or not thread_id:
        raise ConfigError(
            "agentrt's tool node and middleware need the graph's thread id; invoke the graph "
            "with config=rt.thread(principal=..., thread_id=...) (or a config whose "
            f"configurable has that thread_id), got configurable={dict(configurable)!r}"
        )
    return thread_id


def live_record(store: Store, thread_id: str) -> RunRecord:
    """The run row of an own-graph thread that may act now; a clear error if it may not."""
    record = store.get_run(thread_id)
    if record is None:
        raise ConfigError(
            f"thread {thread_id!r} has no agentrt run in {store.location!r}: open it first with "
            f"config = rt.thread(principal=..., thread_id={thread_id!r}) and invoke the graph "
            "with that config, so policy, approvals and budgets know whom the thread acts for"
        )
    if not is_own_graph(record):
        raise ConfigError(
            f"thread {thread_id!r} is a run of agentrt's own run graph, not of this graph; "
            "use another thread id for the app's graph"
        )
    if record.status in TERMINAL:
        raise RunError(
            f"run {thread_id!r} ended {record.status.value}"
            + (f": {record.error}" if record.error else "")
            + "; its graph may not act any more, start a new thread",
            thread_id=thread_id,
        )
    return record


def to_running(store: Store, record: RunRecord, *, now: float) -> RunRecord:
    """The run as running (from pending, or from a gate once decided). A run at a gate
    stays there while a request of the thread is pending: a parallel call of the message
    that waits may act meanwhile, but the thread still waits for a person."""
    if record.status is RunStatus.RUNNING:
        return record
    if record.status is RunStatus.AWAITING_APPROVAL and store.list_approvals(
        ApprovalQuery(status=ApprovalStatus.PENDING.value, thread_id=record.thread_id, limit=1)
    ):
        return record
    try:
        return lifecycle.move(
            store, record.thread_id, RunStatus.RUNNING, now=now, where=store.location
        )
    except UnknownRun:
        raise
    except Exception:
        # Moved meanwhile by another caller of the same thread (already running is fine).
        found = store.get_run(record.thread_id)
        if found is not None and found.status is RunStatus.RUNNING:
            return found
        raise


def thread_state(record: RunRecord) -> RunState:
    """What the policy and the gates read of a run (its RunState fields they use), made
    from the row: the app's graph keeps its own state."""
    return cast(
        RunState,
        {
            "thread_id": record.thread_id,
            "goal": record.goal,
            "principal": record.principal,
            "budget": record.budget,
            "usage": record.usage,
            "events": [],
        },
    )
