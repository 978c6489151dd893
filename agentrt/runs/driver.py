"""Driving runs: create, begin (take the lease), drive a segment, settle, end.

Every operation here is written once (agentrt.steps): a generator that yields the
blocking work it needs and the graph run, driven in the caller's thread for ``rt.start``
and on the event loop for ``rt.astart``. A segment is one stretch of a run in one process: from
start or resume to the next gate, the end, or a failure. Its row says where it is, its
checkpoints say what it did, and its lease says who drives it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any

from langgraph.types import Command
from typing_extensions import Unpack

from agentrt.approvals.expiry import expire_due
from agentrt.approvals.model import ApprovalQuery, ApprovalRequest, Decision
from agentrt.errors import ConfigError, IllegalTransition, RunBusy, UnknownRun
from agentrt.faults import retry_after, retry_delay, transient_cause
from agentrt.limits import SizeLimits
from agentrt.logs import get_logger
from agentrt.nodes.deps import RunDeps, StepStopped
from agentrt.nodes.plan import forget_conversation
from agentrt.nodes.stop_watch import stop_asked
from agentrt.records import LeaseRecord, RunRecord
from agentrt.redaction import Redactor
from agentrt.runs import lifecycle
from agentrt.runs.budgets import BudgetLayers
from agentrt.runs.creating import NewRunRequest, RunCreating
from agentrt.runs.decisions import record_decision
from agentrt.runs.lease import LeaseOwner, acquire
from agentrt.runs.lease_keeper import LeaseKeeper
from agentrt.runs.record import Run, Sweep, initial_state, run_of
from agentrt.runs.segments import SegmentTrace, segment_span, segment_trace
from agentrt.runs.stats import denials_of
from agentrt.runs.streaming import INTERRUPT_KEY, ended_state, final_values, graph_run, read_ended
from agentrt.runs.taking import MessageTaking
from agentrt.state import TERMINAL, RunStatus, storable_text
from agentrt.steps import Step, Steps, blocking
from agentrt.store.protocols import Store
from agentrt.tools.registry import ToolRegistry
from agentrt.tracing import RunTracing
from agentrt.tracing.shown import shown

__all__ = ["NOTHING", "Driver", "NewRunRequest"]

logger = get_logger()

# LangGraph's recursion limit counts supersteps; the run's Budget is the real limit, so
# this only has to stay out of its way.
_RECURSION_LIMIT = 1_000_000


class _Nothing:
    """Marker: the run cannot move now (finished, or waiting for a person)."""


NOTHING: Any = _Nothing()


def config(thread_id: str) -> Any:
    """The graph config of a run's thread."""
    return {"configurable": {"thread_id": thread_id}, "recursion_limit": _RECURSION_LIMIT}


def _invoke(graph: Any, graph_input: Any, cfg: Any) -> Step[Any]:
    """Run the graph until it stops, checkpointing each step (the async planner awaits its
    model without holding a thread)."""
    return graph_run(graph, graph_input, cfg)  # rt.stream runs it with graph.stream


class Driver(MessageTaking, RunCreating):
    """Carries runs of one runtime through their lifecycle (threads on to their next
    message: agentrt.runs.taking; new runs' rows: agentrt.runs.creating)."""

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
        self.leases = LeaseKeeper(self.store, self.store.clock)
        """Renews the leases of the runs this driver's segments hold, from one thread."""
        self.new_id = new_id or (lambda: uuid.uuid4().hex)
        self.stopping = deps.stopping
        """Set: runs this process drives stop before their next step (stop_at_next_step)."""
        self.stopping_threads = deps.stopping_threads
        self.leased_by_taking: set[str] = set()
        self.own_graphs: Any = own_graphs
        """Set by the runtime (agentrt.governed.OwnGraphs): carries on the threads of apps'
        own graphs, which the run graph never drives."""

    # reading ------------------------------------------------------------------------------

    def record(self, thread_id: str) -> RunRecord:
        if not isinstance(thread_id, str) or not thread_id:
            raise ConfigError(f"a thread id is a non-empty string, got {thread_id!r}")
        found = self.store.get_run(thread_id)
        if found is None:
            raise UnknownRun(thread_id, self.store.location)
        return found

    def get(self, thread_id: str) -> Run:
        return run_of(self.record(thread_id), self.store)

    # operations (agentrt.steps) --------------------------------------------------------

    def start(self, goal: str, **request: Unpack[NewRunRequest]) -> Steps[Run]:
        # Leased from birth: a worker sharing the database must not claim it meanwhile.
        thread_id, state, owner = yield blocking(self.create, goal, leased=True, **request)
        run: Run = yield from self.drive(thread_id, state, owner=owner)
        return (yield from self.follow_on(run))

    def resume(self, thread_id: str, owner: LeaseOwner | None = None) -> Steps[Run]:
        graph = self.graph()
        mine = owner or LeaseOwner.this_process(self.new_id())
        graph_input = yield blocking(self.resume_input, graph, thread_id, mine)
        taken = mine.label in self.leased_by_taking  # a message taken for it leased the run
        self.leased_by_taking.discard(mine.label)
        if graph_input is NOTHING:
            now: Run = yield blocking(self.get, thread_id)
            return now
        # The segment renews a lease it holds; one not taken yet it takes (Driver.begin).
        held = mine if owner is not None or taken else None
        run: Run = yield from self.drive(thread_id, graph_input, graph, owner=held)
        return (yield from self.follow_on(run))

    def take_over(self, thread_id: str, owner: LeaseOwner) -> Steps[Run]:
        """Carry on a run this process claimed (its lease held by ``owner``); the lease is
        let go at the end, also when the run had nothing to do."""
        let_go = False
        try:
            if self.stopping.is_set():  # claimed just as this process began to stop
                run: Run = yield blocking(self.get, thread_id)
                return run
            graph = self.graph()
            graph_input = yield blocking(self.resume_input, graph, thread_id, owner)
            if graph_input is NOTHING:
                now: Run = yield blocking(self.get, thread_id)
                return now
            run = yield from self.drive(thread_id, graph_input, graph, owner=owner)
            let_go = True  # the segment let the lease go as it ended
            return (yield from self.follow_on(run))
        finally:
            if not let_go:
                yield blocking(self.store.release_lease, thread_id, owner.label)

    def stop_at_next_step(self) -> None:
        """Stop every run this process drives before its next step, resumable (status
        running, lease let go), for another process to carry on: a worker shutting down."""
        self.stopping.set()

    def decide(self, decision: Decision | dict[str, Any], resume: bool) -> Steps[Run]:
        request: ApprovalRequest = yield blocking(
            record_decision,
            self.store,
            self.tools,
            decision,
            clock=self.clock,
            where=self.store.location,
            redactor=self.redactor,
        )
        if request.kind == "reconcile":  # a person settled an effect in doubt
            self.tracing.metrics.reconciled(request.tool, str(Decision.parse(decision).outcome))
        run: Run = yield from self.carry_on(request.thread_id, resume)
        return run

    def sweep(self, now: float | None, resume: bool) -> Steps[Sweep]:
        when = self.clock() if now is None else now
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

    def drive(
        self,
        thread_id: str,
        graph_input: Any,
        graph: Any = None,
        *,
        owner: LeaseOwner | None = None,
    ) -> Steps[Run]:
        """One segment: take the lease (as ``owner``, who may hold it already), run the
        graph until it stops, settle the row."""
        graph = graph or self.graph()
        owner, record = yield blocking(self.begin, thread_id, owner)
        known: SegmentTrace | None = None
        trace = None
        try:
            kept = self.leases.keep(thread_id, owner.label, self.lease_ttl)
            try:
                # The row in hand (read under the lease, moved to running) is what the
                # segment starts from: its trace, and the status each move is made from.
                cfg = config(thread_id)
                known = yield blocking(segment_trace, graph, record, graph_input, cfg)
                with segment_span(self.tracing, known) as span:
                    run: Run
                    try:
                        ended = yield _invoke(graph, graph_input, cfg)
                    except StepStopped:  # this process stops: left running, resumable
                        run = yield blocking(self.get, thread_id)
                    except Exception as exc:  # a failed run is a result, not a crash
                        run = yield blocking(self.fail, graph, thread_id, exc, record)
                        self.tracing.failed(span, exc, run.error or str(exc))
                    else:
                        if not final_values(ended):  # streamed: read what it ended with
                            ended = yield read_ended(graph, cfg)
                        run = yield blocking(self.settle, graph, thread_id, ended, record)
                    self.tracing.settled(span, run.status.value, output=run.output, error=run.error)
                    return run
            finally:
                self.leases.let_go(kept)  # never waits on a renewal: done on the loop
                forget_conversation(thread_id)  # kept only while a segment drives the run
                trace = yield blocking(self._segment_ended, known)
        finally:
            # Letting go records where the segment's span is (once handed to the exporter):
            # the next segment hangs under the run's root and links to this one.
            yield blocking(self.store.release_lease, thread_id, owner.label, trace=trace)

    # blocking steps -----------------------------------------------------------------------

    def resume_input(self, graph: Any, thread_id: str, owner: LeaseOwner | None = None) -> Any:
        """What to feed the graph to carry this run on, or NOTHING if it cannot move now
        (``owner``: the lease this process holds on it already, if any)."""
        record = self.record(thread_id)
        if record.status in TERMINAL or record.cancel_requested is None:
            waiting = self.message_to_take(graph, config(thread_id), record)
            if waiting is not None:
                owner = owner or LeaseOwner.this_process(self.new_id())
                taken = self.take_message(graph, config(thread_id), record, waiting, owner)
                return NOTHING if taken is None else taken
        if record.status in TERMINAL:
            return NOTHING
        if record.cancel_requested is not None:
            # Asked while another process drove it, which let go before its next step.
            self.cancel(thread_id, reason=record.cancel_requested, owner=owner)
            return NOTHING
        if record.status is RunStatus.PENDING:
            # Never begun (a segment moves its run to running before the graph runs), so no
            # checkpoint to read: it starts from its row, as a new run does.
            return initial_state(record)
        snapshot = graph.get_state(config(thread_id))
        if (snapshot.values or {}).get("message", 0) < record.message:
            # The thread took a message, and its process died before the graph was given it
            # (before its first checkpoint, too: the input then starts from the row).
            return self.answer_input(record, snapshot.values)
        if not snapshot.values:
            # Died before the first checkpoint: start over from the row, which holds it all.
            return initial_state(record)
        if snapshot.interrupts:
            if self.store.list_approvals(ApprovalQuery(thread_id=thread_id, limit=1)):
                if record.status is not RunStatus.AWAITING_APPROVAL:
                    self.move(thread_id, RunStatus.AWAITING_APPROVAL)
                return NOTHING  # still waiting for a person
            # The gate nodes read the decision from the table, not from this value.
            return Command(resume={"decided": True})
        if not snapshot.next and not snapshot.tasks:
            # The graph finished, but the process died before the row said so. (A step
            # whose node writes were saved but whose next checkpoint was not has tasks
            # and no "next": invoking again applies those writes and goes on.)
            self.settle(graph, thread_id, ended_state(snapshot))
            return NOTHING
        return None

    def begin(
        self, thread_id: str, owner: LeaseOwner | None = None
    ) -> tuple[LeaseOwner, RunRecord]:
        """Take the run's lease and mark it running; RunBusy if a live process drives it.
        The owner, and the row as it then is (the segment's moves start from it)."""
        record = None
        if owner is not None:  # claimed, or created leased to it: renewed, the row read too
            expires_at = self.store.clock() + self.lease_ttl
            record = self.store.hold_lease(thread_id, owner.label, expires_at)
        owner = owner or LeaseOwner.this_process(self.new_id())
        if record is None:
            self._acquire(thread_id, owner)
            record = self.record(thread_id)
        if record.status is not RunStatus.RUNNING:
            try:
                record = self.move(thread_id, RunStatus.RUNNING, known=record)
            except BaseException:
                self.store.release_lease(thread_id, owner.label)
                raise
        return owner, record

    def settle(
        self,
        graph: Any,
        thread_id: str,
        values: Mapping[str, Any],
        known: RunRecord | None = None,
    ) -> Run:
        """Write what the graph ended with (its values, as ``invoke`` answers them: with
        ``__interrupt__`` when a gate stopped it) into the runs row (``known``: the row as
        the segment began, which the move starts from)."""
        self._spans_before_status()
        usage = values.get("usage")
        denials = denials_of(values.get("events", ()))
        if values.get(INTERRUPT_KEY):
            record = self.move(
                thread_id, RunStatus.AWAITING_APPROVAL, known=known, usage=usage, denials=denials
            )
        else:
            status = RunStatus(values["status"])
            if status not in TERMINAL:
                raise RuntimeError(
                    f"run {thread_id!r} stopped in status {status.value!r} with nothing next"
                )
            stop = values.get("stop") or {}
            record = self.move(
                thread_id,
                status,
                known=known,
                output=values.get("output"),
                error=values.get("error"),
                usage=usage,
                budget_report=stop.get("budget"),
                denials=denials,
            )
        run = run_of(record, self.store)
        if run.cancel_requested is not None:  # asked after its last step
            return self.end(graph, thread_id, RunStatus.CANCELLED, run.cancel_requested, record)
        return run

    def fail(
        self, graph: Any, thread_id: str, exc: Exception, known: RunRecord | None = None
    ) -> Run:
        """A node raised past its retries: end the run as failed, in the graph and the row;
        or, for a failure that may pass, leave it waiting to be retried (``known``: the row
        as the segment began)."""
        self._spans_before_status()
        cause = transient_cause(exc)
        if cause is not None:
            failures = (known or self.record(thread_id)).transient_failures + 1
            delay = retry_delay(failures, at_least=retry_after(exc))
            # Expected now and then: one line; the stack trace only for those who ask.
            logger.warning("run %r waits to retry in %.0fs: %s", thread_id, delay, cause)
            logger.debug("run %r stopped to wait by", thread_id, exc_info=exc)
            record = self.move(
                thread_id,
                RunStatus.WAITING_RETRY,
                known=known,
                error=storable_text(shown(f"waiting to retry: {cause}", self.redactor)),
                retry_at=self.clock() + delay,
            )
            return run_of(record, self.store)
        logger.error("run %r failed", thread_id, exc_info=exc)
        reason = f"{type(exc).__name__}: {exc}"
        return self.end(graph, thread_id, RunStatus.FAILED, reason, known)

    def end(
        self,
        graph: Any,
        thread_id: str,
        status: RunStatus,
        reason: str,
        known: RunRecord | None = None,
    ) -> Run:
        """End a run in ``status``, in the checkpoint and the row (``known``: the row as
        this process holding the lease last had it)."""
        # Redacted here, at the source: an error quotes what failed (a provider's message
        # with the API key it was given), and the stored error is what every surface shows.
        reason = storable_text(shown(reason, self.redactor))
        snapshot = graph.get_state(config(thread_id))
        if snapshot.values:
            # Mark the checkpoint itself terminal, so a resume has nothing left to run.
            graph.update_state(
                config(thread_id),
                {
                    "status": status.value,
                    "error": reason,
                    "stop": {"status": status.value, "reason": reason},
                },
                as_node="finish",
            )
        usage = snapshot.values.get("usage") if snapshot.values else None
        if usage is not None:
            row = known or self.store.get_run(thread_id)
            if row is not None and row.usage["steps"] > usage["steps"]:
                # A model answer recorded (and counted in the row) after the last
                # checkpoint, its process dead since: paid for, so it stays counted.
                usage = row.usage
        denials = denials_of(snapshot.values.get("events", ())) if snapshot.values else None
        record = self.move(
            thread_id, status, known=known, error=reason, usage=usage, denials=denials
        )
        return run_of(record, self.store)

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
            return self.end(self.graph(), thread_id, RunStatus.CANCELLED, reason)
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

    def _acquire(self, thread_id: str, owner: LeaseOwner) -> None:
        """Take the run's lease (RunBusy if a live process holds it), counting a takeover."""
        now = self.store.clock()
        taken = acquire(self.store, thread_id, owner, self.lease_ttl, now=now)
        if taken is not None:
            self.tracing.metrics.lease_taken_over(
                "expired" if taken.expires_at <= now else "owner_gone"
            )

    def _spans_before_status(self) -> None:
        """Node spans stored before the row says where the run stopped: whoever sees that
        status can read its trace (the segment's own span closes just after)."""
        if self.tracing.stored:  # elsewhere (OTLP) no one reads them by the row: no wait
            self.tracing.flush()

    def _segment_ended(self, known: SegmentTrace | None) -> tuple[str, str] | None:
        """Hand the segment's spans to the exporter; then the trace and span id the row
        records of it as the lease is let go (never before the span has left)."""
        self.tracing.flush()
        if known is None or known.span_id is None:
            return None
        return known.trace_id, known.span_id
