"""The driver's side of carrying a run on (``rt.resume``, a decision, a claim): the run's
lease taken first, then what to feed its graph worked out under it (agentrt.runs.driver
drives the segment)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from langgraph.types import Command

from agentrt.approvals.model import ApprovalQuery
from agentrt.errors import RunBusy, UnknownRun
from agentrt.records import RunRecord
from agentrt.runs.lease import LeaseOwner
from agentrt.runs.record import Run, initial_state
from agentrt.runs.streaming import ended_state
from agentrt.state import TERMINAL, RunState, RunStatus
from agentrt.steps import Steps, blocking, unbroken
from agentrt.store.protocols import Store

__all__ = ["NOTHING", "RunResuming", "config"]

# LangGraph's recursion limit counts supersteps; the run's Budget is the real limit, so
# this only has to stay out of its way.
_RECURSION_LIMIT = 1_000_000


class _Nothing:
    """Marker: the run cannot move now (finished, or waiting for a person)."""


NOTHING: Any = _Nothing()


def config(thread_id: str) -> Any:
    """The graph config of a run's thread."""
    return {"configurable": {"thread_id": thread_id}, "recursion_limit": _RECURSION_LIMIT}


class RunResuming:
    """Mixed into the Driver: resuming a run, and what its graph is fed to go on."""

    store: Store
    new_id: Any
    graph: Any

    if TYPE_CHECKING:  # the Driver's own (and MessageTaking's)

        def record(self, thread_id: str) -> RunRecord: ...

        def get(self, thread_id: str) -> Run: ...

        def _acquire(self, thread_id: str, owner: LeaseOwner) -> None: ...

        def _not_driven_here(self, thread_id: str) -> None: ...

        def drive(
            self,
            thread_id: str,
            graph_input: Any,
            graph: Any = None,
            *,
            owner: LeaseOwner | None = None,
            taken: bool = False,
        ) -> Steps[Run]: ...

        def follow_on(self, run: Run) -> Steps[Run]: ...

        def cancel(
            self, thread_id: str, *, reason: str, owner: LeaseOwner | None = None
        ) -> Run: ...

        def move(
            self, thread_id: str, status: RunStatus, known: RunRecord | None = None, **change: Any
        ) -> RunRecord: ...

        def settle(
            self, graph: Any, thread_id: str, values: Any, known: RunRecord | None = None
        ) -> Run: ...

        def message_to_take(self, graph: Any, cfg: Any, record: RunRecord) -> int | None: ...

        def take_message(
            self, graph: Any, cfg: Any, record: RunRecord, index: int, owner: LeaseOwner
        ) -> dict[str, Any] | None: ...

        def answer_input(self, record: RunRecord, values: RunState) -> dict[str, Any]: ...

    def resume(self, thread_id: str) -> Steps[Run]:
        graph = self.graph()
        mine = LeaseOwner.this_process(self.new_id())
        # The lease first, then what to feed the graph, read under it: no other driver moves
        # the run in between (a stale input would start a live run over). A cancel waits
        # each out, so what they took (the lease, a message leased to ``mine``) is let go
        # after them, never beside them in another thread.
        try:
            yield unbroken(self._lease_to_resume, thread_id, mine)
            graph_input = yield unbroken(self.resume_input, graph, thread_id, mine)
        except (RunBusy, UnknownRun):
            raise  # no lease of ``mine``'s to let go: none was taken, or the run is gone
        except BaseException:
            yield unbroken(self.store.release_lease, thread_id, mine.label)
            raise
        if graph_input is NOTHING:
            yield unbroken(self.store.release_lease, thread_id, mine.label)
            now: Run = yield blocking(self.get, thread_id)
            return now
        run: Run = yield from self.drive(thread_id, graph_input, graph, owner=mine, taken=True)
        return (yield from self.follow_on(run))

    def _lease_to_resume(self, thread_id: str, owner: LeaseOwner) -> None:
        """Take the run's lease for a resume: RunBusy if a live process drives it (this
        one too: a segment of it still under way here), UnknownRun for no run."""
        self._not_driven_here(thread_id)
        try:
            self._acquire(thread_id, owner)
        except KeyError:
            self.record(thread_id)  # says which, and how a thread id looks
            raise

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
