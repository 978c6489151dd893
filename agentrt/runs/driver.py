"""Driving runs: create, begin (take the lease), drive a segment, settle, end.

Every operation here is written once (agentrt.steps): a generator that yields the
blocking work it needs and the graph run, driven in the caller's thread for ``rt.start``
and on the event loop for ``rt.astart``. A segment is one stretch of a run in one process: from
start or resume to the next gate, the end, or a failure. Its row says where it is, its
checkpoints say what it did, and its lease says who drives it.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Collection, Mapping
from functools import partial
from typing import Any

from typing_extensions import Unpack

from agentrt.approvals.expiry import expire_due
from agentrt.approvals.model import ApprovalRequest, Decision
from agentrt.errors import (
    ConfigError,
    IllegalTransition,
    LeaseLost,
    RunBusy,
    ThreadTaken,
    UnknownRun,
)
from agentrt.limits import SizeLimits, error_text
from agentrt.logs import get_logger
from agentrt.nodes.deps import RunDeps, StepStopped
from agentrt.nodes.plan import forget_conversation
from agentrt.nodes.reconcile import in_doubt
from agentrt.nodes.stop_watch import stop_asked
from agentrt.records import AppIdentity, LeaseRecord, RunRecord
from agentrt.redaction import Redactor
from agentrt.runs import lifecycle
from agentrt.runs.budgets import BudgetLayers
from agentrt.runs.creating import NewRunRequest, RunCreating
from agentrt.runs.decisions import record_decision
from agentrt.runs.kept_secrets import KeptSecrets
from agentrt.runs.lease import LeaseOwner, acquire
from agentrt.runs.lease_keeper import Kept, LeaseKeeper
from agentrt.runs.record import Run, Sweep, initial_state, run_of
from agentrt.runs.resuming import NOTHING, RunResuming, config
from agentrt.runs.segments import SegmentTrace, segment_span, segment_trace
from agentrt.runs.settling import RunSettling
from agentrt.runs.streaming import final_values, graph_run, read_ended
from agentrt.runs.taking import MessageTaking
from agentrt.state import TERMINAL, RunStatus, unstorable
from agentrt.steps import Step, Steps, blocking, unbroken
from agentrt.store.protocols import Store
from agentrt.tools.registry import ToolRegistry
from agentrt.tracing import RunTracing
from agentrt.tracing.shown import log_secrets, shown

__all__ = ["Driver", "NewRunRequest"]

logger = get_logger()


def _invoke(graph: Any, graph_input: Any, cfg: Any, owner: str) -> Step[Any]:
    """Run the graph until it stops, checkpointing each step under ``owner``'s lease (the
    async planner awaits its model without holding a thread)."""
    return graph_run(graph, graph_input, cfg, owner)  # rt.stream runs it with graph.stream


def _log_of(graph: Any, cfg: Any) -> Steps[Mapping[str, Any]]:
    """The run's state as its checkpoint has it, for what its log holds; none if it
    cannot be read (the store that failed the run): what is shown is masked all the same."""
    try:
        ended: Mapping[str, Any] = yield read_ended(graph, cfg)
    except Exception:
        logger.debug("a run's log could not be read to mask its error with", exc_info=True)
        return {}
    return ended


_GOING = frozenset({RunStatus.PENDING, RunStatus.RUNNING})
"""A run in these is yet to settle: its log may grow with no move of its row."""


class Driver(MessageTaking, RunCreating, RunResuming, RunSettling):
    """Carries runs of one runtime through their lifecycle (threads on to their next
    message: agentrt.runs.taking; new runs' rows: agentrt.runs.creating; a segment's end
    in its row: agentrt.runs.settling)."""

    def __init__(
        self,
        deps: RunDeps,
        *,
        graph: Callable[[], Any],
        redactor: Redactor,
        budgets: BudgetLayers,
        lease_ttl: float,
        new_id: Callable[[], str] | None = None,
        own_graphs: Any = None,
        app: AppIdentity | None = None,
    ) -> None:
        # The parts every run shares; the policy (which set_policy swaps) is the graph's.
        self.store: Store = deps.store
        self.tools: ToolRegistry = deps.tools
        self.tracing: RunTracing = deps.tracing
        self.limits: SizeLimits = deps.limits
        self.clock = deps.clock
        self.graph = graph
        """The compiled run graph now in force (a new policy compiles a new one)."""
        self.redactor = redactor
        self.budgets = budgets
        self.lease_ttl = lease_ttl
        self.leases = LeaseKeeper(self.store, self.store.clock, run_clock=deps.clock)
        """Renews the leases of the runs this driver's segments hold, from one thread, and
        notes with each the run's active time as the nodes count it (on the runtime's
        clock, which times them)."""
        self.new_id = new_id or (lambda: uuid.uuid4().hex)
        self.app = app
        """The app whose runs these are (agentrt.runs.apps): each new run records it, and
        workers claim only the runs it may drive; None records none (any worker's)."""
        self.stopping_threads = deps.stopping_threads
        """Runs this process drives that stop before their next step (stop_at_next_step)."""
        self.held_leases = deps.held_leases
        self.failed_within = deps.failed_within
        """A pure node's error kept for its own step (agentrt.graphs.onward), by run."""
        self.kept_secrets = KeptSecrets()
        """What each run's log held as its row last moved (a segment here ends with it)."""
        self.own_graphs: Any = own_graphs
        """Set by the runtime (agentrt.governed.OwnGraphs): carries on the threads of apps'
        own graphs, which the run graph never drives."""

    # reading ------------------------------------------------------------------------------

    def record(self, thread_id: str) -> RunRecord:
        if not isinstance(thread_id, str) or not thread_id:
            raise ConfigError(f"a thread id is a non-empty string, got {thread_id!r}")
        # One no database can be asked about (a lone surrogate, a NUL) is one no run was
        # created with: unknown, as a query for it would have said.
        found = None if unstorable(thread_id) else self.store.get_run(thread_id)
        if found is None:
            raise UnknownRun(thread_id, self.store.location)
        return found

    def get(self, thread_id: str) -> Run:
        return run_of(self.record(thread_id), self.store)

    # operations (agentrt.steps) --------------------------------------------------------

    def start(self, goal: str, **request: Unpack[NewRunRequest]) -> Steps[Run]:
        # Named here, written in a worker thread (which a cancel waits out): a caller
        # cancelled meanwhile knows which lease to let go.
        row = self.run_row(goal, **request)
        owner = LeaseOwner.this_process(self.new_id())
        try:
            # Leased from birth: a worker sharing the database must not claim it meanwhile.
            named = bool(request.get("thread_id"))
            record = yield unbroken(partial(self.write_run, row, owner, named=named))
        except ThreadTaken:
            raise  # the id names another run: nothing written, no lease taken
        except BaseException:
            yield unbroken(self.store.release_lease, row.thread_id, owner.label)
            raise
        run: Run = yield from self.drive(row.thread_id, initial_state(record), owner=owner)
        return (yield from self.follow_on(run))

    def take_over(self, thread_id: str, owner: LeaseOwner) -> Steps[Run]:
        """Carry on a run this process claimed (its lease held by ``owner``); the lease is
        let go at the end, also when the run had nothing to do."""
        let_go = False
        try:
            if thread_id in self.stopping_threads:  # claimed just as its worker began to stop
                run: Run = yield blocking(self.get, thread_id)
                return run
            graph = self.graph()
            # Waited out by a cancel: a message it takes is leased to ``owner`` before the
            # lease is let go below, not after.
            graph_input = yield unbroken(self.resume_input, graph, thread_id, owner)
            if graph_input is NOTHING:
                now: Run = yield blocking(self.get, thread_id)
                return now
            run = yield from self.drive(thread_id, graph_input, graph, owner=owner)
            let_go = True  # the segment let the lease go as it ended
            return (yield from self.follow_on(run))
        finally:
            if not let_go:
                yield unbroken(self.store.release_lease, thread_id, owner.label)

    def stop_at_next_step(self, thread_ids: Collection[str]) -> None:
        """Stop these runs this process drives before their next step, resumable (status
        running, lease let go), for another process to carry on: a worker shutting down.
        The runtime's other runs go on; ``stopping_threads`` forgets each once let go."""
        self.stopping_threads.update(thread_ids)

    def decide(self, decision: Decision | dict[str, Any], resume: bool) -> Steps[Run]:
        request: ApprovalRequest = yield blocking(
            record_decision,
            self.store,
            self.tools,
            decision,
            clock=self.store.clock,  # a request's expiry is on the store's clock
            where=self.store.location,
            redactor=self.redactor,
        )
        if request.kind == "reconcile":  # a person settled an effect in doubt
            self.tracing.metrics.reconciled(request.tool, str(Decision.parse(decision).outcome))
        run: Run = yield from self.carry_on(request.thread_id, resume)
        return run

    def sweep(self, now: float | None, resume: bool) -> Steps[Sweep]:
        # A time that is no time would expire every request "at infinity" and fail its run
        # on the way (a span's end past any timestamp): refused before anything is read.
        if now is not None and (
            isinstance(now, bool) or not isinstance(now, int | float) or not math.isfinite(now)
        ):
            raise ConfigError(f"now must be epoch seconds or None (the clock's), got {now!r}")
        when = self.store.clock() if now is None else now  # expires_at is on its clock
        expired, escalated = yield blocking(expire_due, self.store, when)
        runs = []
        for thread_id in dict.fromkeys(r.thread_id for r in expired):
            runs.append((yield from self.carry_on(thread_id, resume)))
        return Sweep(expired=expired, escalated=escalated, runs=tuple(runs))

    def carry_on(self, thread_id: str, resume: bool) -> Steps[Run]:
        """Resume the run unless told not to; a run another process drives is left to it
        (it sees any decision when it reaches the gate)."""
        if resume:
            own = None
            if self.own_graphs is not None:
                own = yield blocking(self.own_graphs.resumer, thread_id)
            if own is not None:  # a thread of the app's own graph: that graph carries it on
                carried: Run = yield from own
                return carried
            try:
                resumed: Run = yield from self.resume(thread_id)
            except RunBusy:
                pass
            else:
                return resumed
        now: Run = yield blocking(self.get, thread_id)
        return now

    def _let_go(self, thread_id: str, kept: Kept) -> None:
        """A segment's end: its lease let go (never waits on a renewal: done on the loop),
        and what this process kept for the run's next step forgotten."""
        self.leases.let_go(kept)
        if self.held_leases.get(thread_id) is kept:
            del self.held_leases[thread_id]
        # A pure node's error kept for the step after it, which never came here (its
        # checkpoint refused, the lease lost): the next segment runs the node anew.
        self.failed_within.pop(thread_id, None)

    def drive(
        self,
        thread_id: str,
        graph_input: Any,
        graph: Any = None,
        *,
        owner: LeaseOwner | None = None,
        taken: bool = False,
    ) -> Steps[Run]:
        """One segment: take the lease (as ``owner``, who may hold it already; ``taken``: a
        moment ago), run the graph until it stops, settle the row. The lease is let go as
        the segment ends, however it ends (a cancel too), also one ``owner`` held before."""
        graph = graph or self.graph()
        held = owner is not None
        owner = owner or LeaseOwner.this_process(self.new_id())  # named before it is taken
        known: SegmentTrace | None = None
        trace = None
        try:
            # Waited out by a cancel, as each step here that writes the row: the lease is
            # let go below only after them, never beside them in another thread.
            record = yield unbroken(self.begin, thread_id, owner, held=held, taken=taken)
            # Counted on from what a segment before it spent, killed inside a node maybe:
            # the node wrapper starts from the larger of that and the checkpoint's.
            active = record.live_active_seconds
            kept = self.leases.keep(thread_id, owner.label, self.lease_ttl, active=active)
            self.held_leases[thread_id] = kept
            try:
                # The row in hand (read under the lease, moved to running) is what the
                # segment starts from: its trace, and the status each move is made from.
                cfg = config(thread_id)
                known = yield blocking(segment_trace, graph, record, graph_input, cfg)
                with segment_span(self.tracing, known) as span:
                    run: Run
                    failure: Exception | None = None
                    try:
                        ended = yield _invoke(graph, graph_input, cfg, owner.label)
                        if not final_values(ended):  # streamed: read what it ended with
                            ended = yield read_ended(graph, cfg)
                    except (StepStopped, LeaseLost):
                        # This process stops, or another took the run over: left as it
                        # is, for whoever drives it next (or drives it now).
                        run = yield blocking(self.get, thread_id)
                        ended = yield from _log_of(graph, cfg)
                    except Exception as exc:  # a failed run is a result, not a crash
                        fail = partial(self.fail, graph, thread_id, exc, record)
                        run = yield unbroken(self._if_ours, kept, fail)
                        ended = yield from _log_of(graph, cfg)
                        failure = exc
                    else:
                        settle = partial(self.settle, graph, thread_id, ended, record)
                        run = yield unbroken(self._if_ours, kept, settle)
                    secrets = self._secrets(ended)
                    if run.status not in _GOING:
                        # Its log stays as it is until its row moves: the first look at
                        # the run (a service's answer, masked with them) reads no log.
                        self.kept_secrets.keep(run, secrets)
                    if failure is not None:
                        said = shown(
                            error_text(run.error or str(failure)), self.redactor, known=secrets
                        )
                        self.tracing.failed(span, failure, said)
                    # Shown as the run is everywhere: masked with what its log holds.
                    self.tracing.settled(
                        span,
                        run.status.value,
                        output=run.output,
                        error=run.error,
                        known=lambda: secrets,
                    )
                    return run
            finally:
                self._let_go(thread_id, kept)
                forget_conversation(thread_id)  # kept only while a segment drives the run
                trace = yield blocking(self._segment_ended, known)
        finally:
            # Letting go records where the segment's span is (once handed to the exporter):
            # the next segment hangs under the run's root and links to this one.
            yield unbroken(self.store.release_lease, thread_id, owner.label, trace=trace)

    def _secrets(self, ended: Mapping[str, Any]) -> list[Any]:
        """The secret values the log of a run's state (``ended``) holds: its output and
        error are shown masked with them (``tracing.shown.log_secrets``)."""
        return log_secrets(ended.get("events") or (), self.redactor, self.tools.sensitive_of)

    # blocking steps -----------------------------------------------------------------------

    def begin(
        self, thread_id: str, owner: LeaseOwner, *, held: bool, taken: bool = False
    ) -> RunRecord:
        """Have ``owner`` hold the run's lease and mark the run running; RunBusy if a live
        process drives it. The row as it then is (the segment's moves start from it).
        ``held``: ``owner`` holds the lease already (claimed, created leased to it, or
        ``taken`` a moment ago, so not renewed yet); else it is taken here."""
        self._not_driven_here(thread_id)
        record = None
        if held and taken:
            record = self.record(thread_id)
        elif held:  # renewed, the row read too
            expires_at = self.store.clock() + self.lease_ttl
            record = self.store.hold_lease(thread_id, owner.label, expires_at)
        if record is None:
            self._acquire(thread_id, owner)
            record = self.record(thread_id)
        if record.status is not RunStatus.RUNNING:
            record = self.move(thread_id, RunStatus.RUNNING, known=record)
        return record

    def cancel(self, thread_id: str, *, reason: str, owner: LeaseOwner | None = None) -> Run:
        """End a run that has not finished, as cancelled; a run another process drives is
        asked to stop at its next step. ``owner``: the lease this process holds already."""
        if not isinstance(reason, str) or not reason.strip():
            raise ConfigError(f"cancelling a run needs a reason in words, got {reason!r}")
        record = self.record(thread_id)
        if record.status in TERMINAL:
            raise IllegalTransition(thread_id, record.status.value, RunStatus.CANCELLED.value)
        owner = owner or LeaseOwner.this_process(self.new_id())
        try:
            self._acquire(thread_id, owner)
        except RunBusy:
            self.store.request_cancel(thread_id, reason)
            stop_asked()
            try:  # the driver may have let go meanwhile, before it saw the request
                self._acquire(thread_id, owner)
            except RunBusy:
                return self.get(thread_id)
        try:
            graph = self.graph()
            snapshot = graph.get_state(config(thread_id))
            # A call its dead driver left in doubt is never settled once the run ends: the
            # run's log and error say so (agentrt.nodes.reconcile.in_doubt).
            told, doubt = in_doubt(self.store, thread_id, snapshot.values)
            if doubt is not None:
                logger.warning("run %r cancelled with %s", thread_id, doubt)
                reason = f"{reason}; {doubt}"
            return self.end(
                graph, thread_id, RunStatus.CANCELLED, reason, snapshot=snapshot, told=told
            )
        finally:
            self.store.release_lease(thread_id, owner.label)

    def lease_for(self, owner: LeaseOwner) -> LeaseRecord:
        """``owner``'s lease from now, on the store's clock."""
        expires_at = self.store.clock() + self.lease_ttl
        return LeaseRecord(owner=owner.label, host=owner.host, pid=owner.pid, expires_at=expires_at)

    def move(
        self, thread_id: str, status: RunStatus, known: RunRecord | None = None, **change: Any
    ) -> RunRecord:
        record = lifecycle.move(
            self.store,
            thread_id,
            status,
            now=self.clock(),
            where=self.store.location,
            known=known,
            **change,
        )
        if status in TERMINAL:  # a finished run moves no more: counted once
            limit = (record.budget_report or {}).get("limit")
            self.tracing.metrics.run_ended(status.value, record.tenant, limit=limit)
        return record

    def _not_driven_here(self, thread_id: str) -> None:
        """RunBusy if a segment of the run is under way in this process: its lease expired
        here (renewals failing) and was taken again here. One process drives a run once at
        a time: the leases it keeps, and the writes it holds, are the run's, not a
        segment's."""
        held = self.held_leases.get(thread_id)
        if held is not None:
            raise RunBusy(thread_id, held.owner, self.store.clock() + self.lease_ttl)

    def _if_ours(self, kept: Kept, end: Callable[[], Run]) -> Run:
        """``end()``, the segment's end written (settled, failed), if this process still
        holds the run's lease; else the run as it stands. Another process took it over
        while an error or a gate ended the segment before a write could say so, and how
        the run ends is not this one's to say. A lease renewed lately is looked at no
        further: none could take it over yet."""
        if not self.leases.surely_held(kept):
            held = self.store.lease_of(kept.thread_id)
            if held is None or held.owner != kept.owner:
                logger.info("run %r: another process took it over; left to it", kept.thread_id)
                return self.get(kept.thread_id)
        return end()

    def _acquire(self, thread_id: str, owner: LeaseOwner) -> None:
        """Take the run's lease (RunBusy if a live process holds it), counting a takeover."""
        now = self.store.clock()
        taken = acquire(self.store, thread_id, owner, self.lease_ttl, now=now)
        if taken is not None:
            self.tracing.metrics.lease_taken_over(
                "expired" if taken.expires_at <= now else "owner_gone"
            )

    def _segment_ended(self, known: SegmentTrace | None) -> tuple[str, str] | None:
        """Hand the segment's spans to the exporter (stored spans are written now); then the
        trace and span id the row records of it as the lease is let go (never before the
        span has left)."""
        self.tracing.flush()
        if known is None or known.span_id is None:
            return None
        return known.trace_id, known.span_id
