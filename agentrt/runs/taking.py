"""The driver's side of threads that go on: taking a thread's next message, and carrying
on once a message ends while another waits (agentrt.runs.messages says what it means)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentrt.approvals.model import ApprovalQuery
from agentrt.budget import Budget
from agentrt.errors import ConfigError, RunBusy, ThreadBusy, UnknownRun
from agentrt.limits import SizeLimits
from agentrt.nodes.plan import answer_recorded
from agentrt.nodes.stop_watch import stop_asked
from agentrt.principal import Principal
from agentrt.records import LeaseRecord, MessageRecord, NewMessage, RunRecord
from agentrt.runs.budgets import BudgetLayers
from agentrt.runs.lease import LeaseOwner, is_own_graph
from agentrt.runs.messages import (
    INTERRUPT_BEFORE,
    INTERRUPTED,
    DoubleTexting,
    check_double_texting,
    check_message_budget,
    message_input,
    opening_for,
)
from agentrt.runs.record import Run, initial_state
from agentrt.state import TERMINAL, RunState, RunStatus, unstorable
from agentrt.steps import Steps, blocking
from agentrt.store.protocols import Store
from agentrt.tracing import RunTracing

__all__ = ["MessageTaking"]


class MessageTaking:
    """Mixed into the Driver: what it does when a message waits for a thread."""

    store: Store
    tracing: RunTracing
    clock: Any
    limits: SizeLimits
    budgets: BudgetLayers
    stopping_threads: set[str]

    if TYPE_CHECKING:  # the Driver's own

        def record(self, thread_id: str) -> RunRecord: ...

        def carry_on(self, thread_id: str, resume: bool) -> Steps[Run]: ...

        def _acquire(self, thread_id: str, owner: LeaseOwner) -> None: ...

        def lease_for(self, owner: LeaseOwner) -> LeaseRecord: ...

        def resume(self, thread_id: str) -> Steps[Run]: ...

        def get(self, thread_id: str) -> Run: ...

    def send(
        self,
        thread_id: str,
        message: str,
        *,
        principal: Principal,
        budget: Budget | None,
        double_texting: DoubleTexting | str,
        resume: bool,
    ) -> Steps[Run]:
        """Keep a follow-up on the thread, then (``resume``) carry the thread on: the
        message is answered now if the thread was idle, else as the policy says."""
        yield blocking(
            self.accept,
            thread_id,
            message,
            principal=principal,
            budget=budget,
            double_texting=double_texting,
        )
        run: Run = yield from self.carry_on(thread_id, resume)
        return run

    def accept(
        self,
        thread_id: str,
        message: str,
        *,
        principal: Principal,
        budget: Budget | None,
        double_texting: DoubleTexting | str,
    ) -> MessageRecord:
        """Check a follow-up and keep it queued on its thread; ThreadBusy if the thread is
        busy and the policy rejects it (nothing kept)."""
        if not isinstance(message, str) or not message.strip():
            raise ConfigError(f"a message is text in words, got {message!r}")
        if len(message) > self.limits.goal_chars:
            raise ConfigError(
                f"the message is {len(message):,} characters, over the runtime's limit of "
                f"{self.limits.goal_chars:,} (SizeLimits.goal_chars); shorten it, or pass the "
                "material to a tool instead"
            )
        if problem := unstorable(message, "the message"):
            raise ConfigError(f"this message cannot be stored: {problem}; pass text only")
        if not isinstance(principal, Principal):
            raise ConfigError(
                f"principal must be an agentrt Principal, got {principal!r}; "
                "e.g. Principal('alice', roles=['operator'], tenant='acme')"
            )
        if budget is not None:
            if not isinstance(budget, Budget):
                raise ConfigError(f"budget must be an agentrt Budget, got {budget!r}")
            self.budgets.check(budget, "the message's budget")
        mode = check_double_texting(double_texting)
        record = self.record(thread_id)
        if principal.tenant != record.tenant:
            # Another tenant's thread answers as no thread at all: ids do not leak. The
            # sender must be of the thread's tenant (README), so a principal of every
            # tenant, who may read and decide its requests, speaks in none: its turn would
            # act past every policy rule that names the thread's tenant.
            raise UnknownRun(thread_id, self.store.location)
        if is_own_graph(record):
            raise ConfigError(
                f"thread {thread_id!r} is driven by an app's own graph, which keeps its own "
                "conversation: send the message through that graph (graph.invoke on its "
                "thread), not rt.send"
            )
        if budget is not None:
            check_message_budget(budget, Budget.from_dict(record.budget))
        busy = record.status not in TERMINAL
        rejecting = mode is DoubleTexting.REJECT
        if busy and rejecting:
            raise ThreadBusy(thread_id, record.status.value)
        kept = self.store.add_message(
            NewMessage(
                thread_id=thread_id,
                text=message,
                principal=principal.to_dict(),
                budget=budget.to_dict() if budget is not None else None,
                interrupt=busy and mode is DoubleTexting.INTERRUPT and not self._settling(record),
            ),
            # Idle as the write finds it: of two messages sent at once, one is kept.
            only_if_idle=rejecting,
        )
        if kept is not None and kept.interrupt:
            stop_asked()  # this process's runs look for it at their next node
        if kept is None:
            now = self.store.get_run(thread_id)
            if now is None:  # pruned meanwhile
                raise UnknownRun(thread_id, self.store.location)
            # Gone on meanwhile, or another message came first and waits to be answered.
            raise ThreadBusy(
                thread_id, now.status.value if now.status not in TERMINAL else "queued"
            )
        return kept

    def _settling(self, record: RunRecord) -> bool:
        """The thread waits at a reconcile gate: an effect in doubt that a person must
        settle before anything else happens on the thread."""
        return record.status is RunStatus.AWAITING_APPROVAL and any(
            r.kind == "reconcile"
            for r in self.store.list_approvals(ApprovalQuery(thread_id=record.thread_id))
        )

    def message_waiting(self, record: RunRecord) -> int | None:
        """The queued message this thread takes now, if one waits for it: any queued one
        once the thread has finished, one sent to interrupt while it is live (unless it
        waits at a reconcile gate, where an effect in doubt must be settled first)."""
        if record.status in TERMINAL:
            return self._queued(record.thread_id)
        _, interrupt = self.store.stop_requests(record.thread_id)
        if not interrupt or self._settling(record):
            return None
        return self._queued(record.thread_id)

    def _queued(self, thread_id: str) -> int | None:
        """The index of the thread's next queued message, if one is queued."""
        queued = self.store.queued_message(thread_id)
        return queued.index if queued is not None else None

    def message_to_take(self, graph: Any, cfg: Any, record: RunRecord) -> int | None:
        """The queued message this thread takes now (message_waiting), a live run's only
        where its checkpoint stands at a safe point. A run stops before every node when its
        driver stops (its caller stopped reading, its worker stops, its process died), so a
        live, free run may stand between an effect and its verification, or before a
        reconcile gate: it is resumed as usual then, and the graph stops it before its next
        safe node (agentrt.graphs.run_graph), where the message is taken."""
        waiting = self.message_waiting(record)
        if waiting is None or record.status in TERMINAL:
            return waiting
        snapshot = graph.get_state(cfg)
        if not snapshot.values:  # it never began: nothing is half done
            return waiting
        safe = bool(snapshot.next) and all(node in INTERRUPT_BEFORE for node in snapshot.next)
        if safe:  # not before a plan step whose answer is recorded: it plans from it first
            steps = snapshot.values.get("usage", {}).get("steps", 0)
            safe = not answer_recorded(self.store, record.thread_id, steps)
        return waiting if safe else None

    def take_message(
        self, graph: Any, cfg: Any, record: RunRecord, index: int, owner: LeaseOwner
    ) -> dict[str, Any] | None:
        """Make queued message ``index`` the thread's current one, leased to ``owner``;
        the graph input that answers it, or None if another process took it first."""
        self._acquire(record.thread_id, owner)  # RunBusy while a live process drives it
        values: RunState = graph.get_state(cfg).values or RunState()
        opening = opening_for(
            self.store,
            record,
            values,
            index=index,
            lease=self.lease_for(owner),
            now=self.clock(),
        )
        opened = self.store.open_message(record.thread_id, opening)
        if opened is None:
            self.store.release_lease(record.thread_id, owner.label)
            return None
        if opening.from_status in TERMINAL:
            # A finished thread set going again starts as a run does, for it will end as
            # one does (runs.ended counts each move to an end status): started - ended is
            # then what is in flight, and ended / started a completion rate. A message that
            # interrupts a live run starts nothing: the stretch it cuts off never ends.
            self.tracing.metrics.run_started(opened.tenant)
        return self.answer_input(opened, values)

    def answer_input(self, record: RunRecord, values: RunState) -> dict[str, Any]:
        """The graph input that answers the thread's current message (``record.message``).

        Whether it interrupted the stretch before it is read from how that stretch's message
        ended (taking it wrote that down), so an input given again, after the process that
        took the message died before giving it, says so as the first would have."""
        kept = self.store.thread_messages(record.thread_id)
        [message] = [m for m in kept if m.index == record.message]
        # The stretch before: the last message before it (they are taken in order), which
        # the checkpoint may not name (none yet, or a taken one its taker never gave).
        before = max(
            (m for m in kept if m.index < record.message), key=lambda m: m.index, default=None
        )
        interrupted = before.index if before is not None and before.status == INTERRUPTED else None
        given = message_input(
            message, Budget.from_dict(record.budget), values, interrupted=interrupted
        )
        # A thread that never reached its first checkpoint (cancelled while pending) starts
        # from its row, as a new run does, with the message after its goal.
        return given if values else {**initial_state(record), **given}

    def follow_on(self, run: Run) -> Steps[Run]:
        """After a segment: if the run finished, or stopped for an interrupting message,
        and a message waits for the thread, take it and drive it too (a process or caller
        that is stopping leaves it to whoever drives the thread next)."""
        if run.status not in TERMINAL and run.status is not RunStatus.RUNNING:
            return run
        if run.thread_id in self.stopping_threads:
            return run
        if run.status in TERMINAL:  # it stays so: whether a message waits is all to ask
            waiting = yield blocking(self._queued, run.thread_id)
        else:
            record = yield blocking(self.store.get_run, run.thread_id)
            waiting = yield blocking(self.message_waiting, record)
        if waiting is None:
            return run
        try:
            carried: Run = yield from self.resume(run.thread_id)
        except RunBusy:  # another process drives the thread now: it takes the message
            now: Run = yield blocking(self.get, run.thread_id)
            return now
        return carried
