"""AgentRuntime's reading side: runs, the review queue, a run's events and trace, prune
and stats. A part of the door (``agentrt.runtime``), kept in a file of its own; each method
is one line into the room that does the work, over the attributes the runtime sets.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from agentrt.approvals.model import ApprovalPage, ApprovalRequest, ApprovalStatus
from agentrt.approvals.queue import queue_page
from agentrt.artifacts import ArtifactRef
from agentrt.budget import MAX_LIMIT
from agentrt.errors import ConfigError
from agentrt.redaction import Redactor
from agentrt.runs.decisions import approval_named
from agentrt.runs.driver import Driver
from agentrt.runs.record import Run, run_of, status_named
from agentrt.runs.resuming import config
from agentrt.runs.stats import RunStats, compute_stats
from agentrt.state import Event, RunStatus, unstorable
from agentrt.store import OpenedStore
from agentrt.store.held import HoldingSaver
from agentrt.store.protocols import Store
from agentrt.tools.artifacts import artifact_of
from agentrt.tools.registry import ToolRegistry
from agentrt.tracing import Trace
from agentrt.tracing.shown import log_secrets
from agentrt.tracing.view import build_trace

__all__ = ["RunReading"]


class RunReading:
    """What an AgentRuntime reads and tidies in its database (mixed into it)."""

    store: Store
    graph: Any
    clock: Callable[[], float]
    _driver: Driver
    _opened: OpenedStore
    redactor: Redactor
    tools: ToolRegistry

    def runs(
        self, status: RunStatus | str | None = None, *, tenant: str | None = None, limit: int = 100
    ) -> list[Run]:
        """Runs, newest first, filtered by status and tenant; at most ``limit`` (1 to
        2**63 - 1) of them."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
            # SQLite reads a negative LIMIT as none at all, and cannot take one past 64 bits.
            raise ConfigError(
                f"limit must be a whole number from 1 to 2**63 - 1, got {limit!r}; "
                "give how many runs to list, newest first"
            )
        named = None if status is None else status_named(status)
        found = self.store.list_runs(status=named, tenant=tenant, limit=limit)
        return [run_of(r, self.store) for r in found]

    def approvals(
        self,
        status: ApprovalStatus | str | None = "pending",
        *,
        tenant: str | None = None,
        role: str | None = None,
        thread_id: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> ApprovalPage:
        """The review queue: approval requests across all runs, oldest first, one page.

        Filters: status (None for all), tenant, a role a request requires, the run. The
        page's ``next_cursor`` continues where it ended; requests added meanwhile never
        make a page repeat or skip a row already listed.
        """
        return queue_page(
            self.store,
            status,
            tenant=tenant,
            role=role,
            thread_id=thread_id,
            limit=limit,
            cursor=cursor,
        )

    def exists(self, thread_id: str) -> bool:
        """True if a run has this thread id (in any tenant)."""
        return not unstorable(thread_id) and self.store.get_run(thread_id) is not None

    def approval(self, approval_id: str) -> ApprovalRequest:
        """One approval request by id, whatever its status; InvalidDecision if unknown."""
        return approval_named(self.store, approval_id, where=self.store.location)

    def events(self, thread_id: str) -> list[Event]:
        """The run's event log: plans, policy decisions, approvals, observations, finish."""
        self._driver.record(thread_id)
        return list(self.graph.get_state(config(thread_id)).values.get("events", []))

    def log_secrets(self, thread_id: str, *, as_of: Run | None = None) -> list[Any]:
        """The secret values the run's log holds (its tools' sensitive arguments and
        results, ``tracing.shown.log_secrets``): what every text shown of the run (its
        output, an error, a report, an event sent out) is masked with, as its events are.
        It reads the log: off the event loop. ``as_of``: the run as just read, whose row's
        state keeps what its log held (``kept_log_secrets``), read only if not kept."""
        if as_of is not None and (kept := self.kept_log_secrets(as_of)) is not None:
            return kept
        values = log_secrets(self.events(thread_id), self.redactor, self.tools.sensitive_of)
        if as_of is not None:
            self._driver.kept_secrets.keep(as_of, values)
        return values

    def kept_log_secrets(self, run: Run) -> list[Any] | None:
        """What ``run``'s log held when its row was last in the state ``run`` shows, if this
        runtime kept it (the segment that moved it there, or a read ``as_of`` it); None if
        not. No I/O: for the event loop (agentrt.runs.kept_secrets)."""
        if run.status is RunStatus.PENDING:
            return []  # never begun: it has no log yet
        return self._driver.kept_secrets.get(run)

    def trace(self, thread_id: str) -> Trace:
        """The run's spans from the database's span store: a tree and where the time went."""
        record = self._driver.record(thread_id)
        trace_id, _ = self.store.run_trace(thread_id)
        rows = self.store.spans_of(trace_id) if trace_id else []
        if not rows:
            raise ConfigError(
                f"no spans are stored for run {thread_id!r} in {self.store.location!r}; spans "
                "go to the database with tracing='sqlite' (the default); this run was driven "
                "with another tracing setting"
                + ("" if record.trace_id else " or before tracing existed")
            )
        assert trace_id is not None
        return build_trace(thread_id, trace_id, rows)

    def artifacts(self, thread_id: str) -> list[ArtifactRef]:
        """The run's artifacts (files its tools put, results too large to inline), by
        name; UnknownRun if there is no such run."""
        self._driver.record(thread_id)
        return [a.ref for a in self.store.list_artifacts(thread_id)]

    def artifact(self, thread_id: str, name: str) -> bytes:
        """The content of the run's artifact ``name``; UnknownRun or UnknownArtifact."""
        return artifact_of(self.store, self._driver.record(thread_id).thread_id, name)[1]

    def unfinished_runs(self) -> list[str]:
        """Runs a process may have left mid-way (running, pending, decided at their gate but
        not carried on, or asked to cancel), oldest first: what a service resumes at start."""
        return self.store.unfinished_runs()

    def due_retries(self) -> list[str]:
        """Runs waiting to retry whose wait is over, soonest first."""
        return self.store.due_retries(self.store.clock())  # retry_at is on its clock

    @property
    def schema_version(self) -> int:
        """The database's agentrt schema version."""
        return self.store.schema_version

    def prune(self, *, older_than: float, keep_latest: int = 0) -> list[str]:
        """Delete finished runs last updated more than ``older_than`` seconds ago.

        Their checkpoints, approvals, ledger entries, spans, model calls and artifacts go
        with them (an artifact's content stays while a kept run refers to it); the newest
        ``keep_latest`` runs stay whatever their age. A run waiting at a gate, running, or
        stopped by a crash is never pruned, nor one that wakes while prune works (a message
        sent to it, a resume). Returns the deleted thread ids; ConfigError names an argument
        that is not a count of seconds or runs.
        """
        if (
            isinstance(older_than, bool)
            or not isinstance(older_than, int | float)
            or not math.isfinite(older_than)
        ):
            raise ConfigError(
                f"older_than must be a finite number of seconds, got {older_than!r} "
                "(30 days: 30 * 86400)"
            )
        if older_than < 0:
            raise ConfigError(f"older_than must be >= 0 seconds, got {older_than!r}")
        if isinstance(keep_latest, bool) or not isinstance(keep_latest, int):
            raise ConfigError(f"keep_latest must be a whole number of runs, got {keep_latest!r}")
        if keep_latest < 0:
            raise ConfigError(f"keep_latest must be >= 0, got {keep_latest!r}")
        if keep_latest > MAX_LIMIT:  # past 64 bits: no database can take it
            raise ConfigError(
                f"keep_latest must be at most 2**63 - 1 runs, got {keep_latest!r}; to keep "
                "every run, do not prune"
            )
        # The store's clock, by which it wrote updated_at (on PostgreSQL the server's): a
        # host whose own clock runs ahead would otherwise delete runs that just finished.
        before = self.store.clock() - older_than
        doomed = self.store.prunable_runs(before=before, keep_latest=keep_latest)
        saver = self._opened.checkpointer
        gone = []
        for thread_id in doomed:
            # Looked at again as it is deleted: a run that woke meanwhile (a message sent, a
            # lease taken, a move) stays, and so do its checkpoints. Its checkpoints go in
            # the row's transaction: a prune that dies midway leaves no graph's state under
            # an id that is free again.
            if self.store.delete_run(thread_id, idle_before=before):
                if isinstance(saver, HoldingSaver):
                    saver.holding.forget(thread_id)  # what this process held of it goes too
                gone.append(thread_id)
        self.store.drop_unreferenced_artifacts()
        return gone

    def stats(self, *, since: float | None = None, tenant: str | None = None) -> RunStats:
        """What the runs created at or after ``since`` (epoch seconds; None: every run) of
        ``tenant`` (None: every tenant) did: counts by status, approval waits, denials by
        rule and the slowest tools; and what was spent since, by tenant and day, and the
        budget stops of the messages taken since (agentrt.runs.stats)."""
        return compute_stats(self.store, since=since, tenant=tenant)
