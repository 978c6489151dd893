"""AgentRuntime: the one object an app holds. Start, decide, resume and inspect runs."""

from __future__ import annotations

import asyncio
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

from langchain_core.language_models import BaseChatModel
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import Command, RetryPolicy, StateSnapshot
from opentelemetry.trace import TracerProvider

from agentrt.approvals import (
    ApprovalPage,
    ApprovalRequest,
    ApprovalStatus,
    Decision,
    check_decision,
    decode_cursor,
    encode_cursor,
    escalation_of,
)
from agentrt.budget import Budget, ModelPrice, empty_usage, find_price, price_table, raised_budget
from agentrt.errors import (
    AlreadyDecided,
    ConfigError,
    IllegalTransition,
    InvalidDecision,
    RunBusy,
    UnknownRun,
)
from agentrt.faults import retry_delay, transient_cause
from agentrt.graphs import DEFAULT_INSTRUCTIONS, RunDeps, build_run_graph
from agentrt.limits import SizeLimits
from agentrt.logs import get_logger, redact_logs, stop_redacting_logs
from agentrt.models import model_name_of, output_cap, output_cap_field, resolve_model
from agentrt.policies import Policy
from agentrt.principal import Principal
from agentrt.state import TERMINAL, BudgetReport, Event, RunState, RunStatus, Usage, unstorable
from agentrt.store import recordings
from agentrt.store.checkpoints import Checkpoints
from agentrt.store.sqlite import LeaseOwner, RunRecord, Store
from agentrt.tools.contract import ToolArgsError
from agentrt.tools.execution import ToolRunner
from agentrt.tools.ledger import Ledger
from agentrt.tools.registry import ToolLike, ToolRegistry
from agentrt.tracing import Redactor, RunTracing, Trace, make_provider, new_trace_id
from agentrt.tracing import attributes as A
from agentrt.tracing.shown import shown
from agentrt.tracing.view import build_trace

if TYPE_CHECKING:
    from agentrt.replay import ReplayReport

__all__ = ["DEFAULT_BUDGET", "AgentRuntime", "Run", "Sweep"]

logger = get_logger()

DEFAULT_BUDGET = Budget(max_steps=100)
"""What a run may spend when neither the runtime nor the call says otherwise."""

# LangGraph's recursion limit counts supersteps; the run's Budget is the real limit, so
# this only has to stay out of its way.
_RECURSION_LIMIT = 1_000_000

_DECISION_STATUS = {
    "approve": ApprovalStatus.APPROVED,
    "reject": ApprovalStatus.REJECTED,
    "edit": ApprovalStatus.EDITED,
    "resolve": ApprovalStatus.RESOLVED,
    "retry": ApprovalStatus.RETRIED,
}


@dataclass(frozen=True, kw_only=True, slots=True)
class Run:
    """A snapshot of one run, as the store has it now."""

    thread_id: str
    """The run's identity; resume it with this."""
    status: RunStatus
    """Where the run is; see agentrt.state.TRANSITIONS."""
    goal: str
    """What the run was asked to do."""
    principal: Principal
    """Who the run acts for."""
    output: str | None
    """The final answer, once succeeded."""
    error: str | None
    """Why the run failed or stopped, if it did."""
    usage: Usage
    """What the run has spent."""
    budget: Budget
    """The limits in force: the runtime's, the tenant's and the run's, layered."""
    budget_report: BudgetReport | None
    """If a limit stopped the run: which, the usage, and the action it stopped before."""
    pending_approval: ApprovalRequest | None
    """The (first) request a person must decide before the run goes on."""
    created_at: float
    """Epoch seconds."""
    updated_at: float
    """Epoch seconds of the last status change."""
    pending_approvals: tuple[ApprovalRequest, ...] = ()
    """Every request of the gate the run waits at, one per action; it resumes when each
    is decided."""
    cancel_requested: str | None = None
    """Set when a cancel was asked while another process drove the run: the reason. The
    run ends cancelled at its next step."""
    retry_at: float | None = None
    """For status waiting_retry: when it may go on (resume carries it on at any time)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Sweep:
    """What one rt.sweep_approvals() did."""

    expired: tuple[ApprovalRequest, ...]
    """Requests this sweep expired, as they were just before."""
    escalated: tuple[ApprovalRequest, ...]
    """New requests made because an expired one's rule said escalate."""
    runs: tuple[Run, ...]
    """The runs of the expired requests, as they are after being carried on."""


class _Heartbeat:
    """Keeps a run's lease alive from a background thread while this process drives it."""

    def __init__(self, store: Store, thread_id: str, owner: LeaseOwner, ttl: float) -> None:
        self._args = (thread_id, owner, ttl)
        self._store = store
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="agentrt-lease", daemon=True)

    def _beat(self) -> None:
        thread_id, owner, ttl = self._args
        while not self._stop.wait(ttl / 3):
            try:
                if not self._store.renew_lease(thread_id, owner, ttl):
                    logger.warning("lost the lease on run %r", thread_id)
                    return
            except Exception:  # a failed renewal must not kill the run it protects
                logger.exception("could not renew the lease on run %r", thread_id)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    async def __aenter__(self) -> _Heartbeat:
        return self.__enter__()

    async def __aexit__(self, *exc: object) -> None:
        # A renewal in progress may wait on SQLite's write lock, held by a checkpoint
        # transaction that needs the event loop: join where the loop is not blocked.
        self._stop.set()
        await asyncio.to_thread(self._thread.join)


class AgentRuntime:
    """A durable agent runtime over one SQLite file.

    Every run is a thread of the compiled run graph (``rt.graph``), checkpointed after each
    step, with a row in the runs table written before the first node runs. A run stopped at
    an approval gate, or whose process died, goes on from its thread id in any process that
    opens the same file.
    """

    def __init__(
        self,
        model: str | BaseChatModel,
        tools: Sequence[ToolLike] = (),
        policy: Policy | None = None,
        db: str | Path = "agentrt.db",
        *,
        tracing: str | TracerProvider | None = "sqlite",
        capture_content: bool = False,
        redactor: Redactor | None = None,
        budget: Budget | None = None,
        tenant_budgets: Mapping[str, Budget] | None = None,
        prices: Mapping[str, ModelPrice | tuple[float, float]] | None = None,
        instructions: str = DEFAULT_INSTRUCTIONS,
        clock: Callable[[], float] = time.time,
        new_id: Callable[[], str] | None = None,
        lease_ttl: float = 30.0,
        model_retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random,
        limits: SizeLimits | None = None,
    ) -> None:
        if not isinstance(capture_content, bool):
            raise ConfigError(f"capture_content must be True or False, got {capture_content!r}")
        if redactor is not None and not isinstance(redactor, Redactor):
            raise ConfigError(f"redactor must be an agentrt Redactor, got {redactor!r}")
        if lease_ttl <= 0:
            raise ConfigError(f"lease_ttl must be > 0 seconds, got {lease_ttl!r}")
        if limits is not None and not isinstance(limits, SizeLimits):
            raise ConfigError(f"limits must be an agentrt SizeLimits, got {limits!r}")
        self.limits = limits or SizeLimits()
        """Largest goal, tool arguments and tool result a run keeps."""
        self.db = str(db)
        self.tools = ToolRegistry(tools)
        policy = self._checked(policy if policy is not None else Policy.cautious())
        if budget is not None and not isinstance(budget, Budget):
            raise ConfigError(f"budget must be an agentrt Budget, got {budget!r}")
        self.budget = DEFAULT_BUDGET if budget is None else budget.over(DEFAULT_BUDGET)
        """The default limits of every run (over DEFAULT_BUDGET)."""
        self.tenant_budgets = dict(tenant_budgets or {})
        """Per tenant: limits layered over the default for that tenant's runs."""
        for tenant, tenant_budget in self.tenant_budgets.items():
            if not isinstance(tenant_budget, Budget):
                raise ConfigError(
                    f"tenant_budgets[{tenant!r}] must be an agentrt Budget, got {tenant_budget!r}"
                )
        self.clock = clock
        self.lease_ttl = lease_ttl
        self._new_id = new_id or (lambda: uuid.uuid4().hex)
        self.store = Store(self.db, clock=clock)
        self._saver = Checkpoints(self.db)
        self._saver.setup()
        chat = resolve_model(model)
        self.model_name = model_name_of(chat)
        """The planner model's name, as its price is looked up."""
        self.model_price = find_price(self.model_name, price_table(prices))
        """What the model charges; None if neither the table nor prices= knows it."""
        if self.model_price is None:
            logger.info(
                "no price for model %r: usage counts its tokens but no cost, and a "
                "max_cost_usd limit is refused; pass prices={%r: (input, output)} in USD "
                "per million tokens",
                self.model_name,
                self.model_name,
            )
        self._cap_field = output_cap_field(chat)
        self._model_cap = output_cap(chat)
        for where, checked in (
            ("the runtime's budget", self.budget),
            *(
                (f"tenant {t!r}'s budget", b.over(self.budget))
                for t, b in self.tenant_budgets.items()
            ),
        ):
            self._check_enforceable(checked, where)
        self._tracing_setup = make_provider(tracing, self.db)
        # The default hashes with this file's own random salt: a known salt would let
        # anyone hash guesses (a card number) and match them against hashed content.
        self.redactor = redactor or Redactor(salt=self.store.redaction_salt())
        """What content passes before a person, a span or a log line sees it."""
        redact_logs(self.redactor, self)
        self.tracing = RunTracing(
            self._tracing_setup.tracer,
            clock=clock,
            capture_content=capture_content,
            redactor=self.redactor,
            sensitive_of=self.tools.sensitive_of,
        )
        """The runtime's spans; ``export_failures`` counts spans an exporter lost."""
        self.deps = RunDeps(
            model=chat,
            tools=self.tools,
            policy=policy,
            store=self.store,
            ledger=Ledger(self.store),
            tracer=self._tracing_setup.tracer,
            tracing=self.tracing,
            clock=clock,
            runner=ToolRunner(
                sleep=sleep, rand=rand, clock=clock, max_result_bytes=self.limits.result_bytes
            ),
            instructions=instructions,
            model_retry=model_retry or RetryPolicy(max_attempts=3),
            model_price=self.model_price,
            limits=self.limits,
        )
        self.graph: CompiledStateGraph[RunState, None, RunState, RunState] = build_run_graph(
            self.deps, self._saver
        )
        """The compiled run graph, checkpointed to ``db``; embed it or draw it (set_policy
        compiles a new one)."""

    # policy -------------------------------------------------------------------------------

    @property
    def policy(self) -> Policy:
        """The policy every action is checked against from now on."""
        return self.deps.policy

    @policy.setter
    def policy(self, policy: Policy) -> None:
        self.set_policy(policy)

    def set_policy(self, policy: Policy) -> None:
        """Check actions against ``policy`` from now on, in this live runtime.

        The policy is validated against the runtime's tools first; a refused one changes
        nothing. Runs waiting at a gate, and runs resumed later, are decided by the new
        policy (an approved action whose policy changed is checked again before it runs);
        every decision records the version it used, and a run's history gets a
        ``policy_changed`` event where its decisions switch versions. A segment already
        being driven in another thread finishes on the policy it started with.

        A Policy is a value: ``Policy.from_file`` reads the file once, so an edit on disk
        takes effect only through this call (or a new process), after it was validated.
        """
        checked = self._checked(policy)
        self.deps = replace(self.deps, policy=checked)
        self.graph = build_run_graph(self.deps, self._saver)

    def _checked(self, policy: Policy) -> Policy:
        if not isinstance(policy, Policy):
            raise ConfigError(f"policy must be an agentrt Policy, got {policy!r}")
        policy.check_tools(self.tools.names())
        return policy

    # lifecycle ----------------------------------------------------------------------------

    def close(self) -> None:
        """Close the database connections and flush and stop the span exporter we built."""
        stop_redacting_logs(self.redactor, self)
        if self._tracing_setup.provider is not None:
            self._tracing_setup.provider.shutdown()
        self._saver.close()
        self.store.close()

    @property
    def export_failures(self) -> int:
        """Span batches the exporter failed to deliver (each logged); the runs went on."""
        exporter = self._tracing_setup.exporter
        return exporter.failures if exporter is not None else 0

    def __enter__(self) -> AgentRuntime:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # reading ------------------------------------------------------------------------------

    def get(self, thread_id: str) -> Run:
        """The run with this thread id; UnknownRun if there is none."""
        return self._run(self._record(thread_id))

    def runs(
        self,
        status: RunStatus | str | None = None,
        *,
        tenant: str | None = None,
        limit: int = 100,
    ) -> list[Run]:
        """Runs, newest first, filtered by status and tenant."""
        if status is not None:
            status = _status(status)
        return [
            self._run(r) for r in self.store.list_runs(status=status, tenant=tenant, limit=limit)
        ]

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

        Filters: status (None for all), tenant, the role a request requires, the run. The
        page's ``next_cursor`` continues where it ended; requests added meanwhile never
        make a page repeat or skip a row already listed.
        """
        if status is not None:
            try:
                status = ApprovalStatus(status).value
            except ValueError:
                raise ConfigError(
                    f"unknown approval status {status!r}; use one of "
                    f"{[s.value for s in ApprovalStatus]!r}"
                ) from None
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000:
            raise ConfigError(f"limit must be an int from 1 to 10000, got {limit!r}")
        found = self.store.list_approvals(
            status=status,
            tenant=tenant,
            role=role,
            thread_id=thread_id,
            after=None if cursor is None else decode_cursor(cursor),
            limit=limit + 1,
        )
        more = len(found) > limit
        page = found[:limit]
        return ApprovalPage(page, encode_cursor(page[-1]) if more else None)

    def approval(self, approval_id: str) -> ApprovalRequest:
        """One approval request by id, whatever its status; InvalidDecision if unknown."""
        request = self.store.get_approval(approval_id)
        if request is None:
            raise InvalidDecision(
                f"no approval request has id {approval_id!r} in {self.db!r}; "
                "list them with rt.approvals(None) or `agentrt approvals --status all`",
                approval_id=approval_id,
            )
        return request

    def sweep_approvals(self, now: float | None = None, *, resume: bool = True) -> Sweep:
        """Expire every pending request whose time is up, and carry its run on.

        The rule that asked for the approval says what expiry means: reject (the planner
        is told it expired) or escalate (a new request, for another role, linked to the
        old one; the run keeps waiting). Each expiry is a conditional update, so sweeping
        twice is a no-op and a decider racing the sweep either wins or gets ApprovalExpired.
        With ``resume=False`` the runs are returned as they are, for the caller to carry on.
        """
        expired, escalated = self._expire_due(self.clock() if now is None else now)
        runs = []
        for thread_id in dict.fromkeys(r.thread_id for r in expired):
            if not resume:
                runs.append(self.get(thread_id))
                continue
            try:
                runs.append(self.resume(thread_id))
            except RunBusy:
                # Whoever drives the run now sees the expiry when it reaches the gate.
                runs.append(self.get(thread_id))
        return Sweep(expired=expired, escalated=escalated, runs=tuple(runs))

    async def asweep_approvals(self, now: float | None = None, *, resume: bool = True) -> Sweep:
        """Async twin of sweep_approvals."""
        when = self.clock() if now is None else now
        expired, escalated = await asyncio.to_thread(self._expire_due, when)
        runs = []
        for thread_id in dict.fromkeys(r.thread_id for r in expired):
            if not resume:
                runs.append(await asyncio.to_thread(self.get, thread_id))
                continue
            try:
                runs.append(await self.aresume(thread_id))
            except RunBusy:
                runs.append(await asyncio.to_thread(self.get, thread_id))
        return Sweep(expired=expired, escalated=escalated, runs=tuple(runs))

    def events(self, thread_id: str) -> list[Event]:
        """The run's event log: plans, policy decisions, approvals, observations, finish."""
        self._record(thread_id)
        return list(self.graph.get_state(self._config(thread_id)).values.get("events", []))

    def trace(self, thread_id: str) -> Trace:
        """The run's spans from the SQLite span store: a tree and where the time went."""
        record = self._record(thread_id)
        trace_id, _ = recordings.run_trace(self.store, thread_id)
        rows = recordings.spans_of(self.store, trace_id) if trace_id else []
        if not rows:
            raise ConfigError(
                f"no spans are stored for run {thread_id!r} in {self.db!r}; spans go to the "
                "database with tracing='sqlite' (the default); this run was driven with "
                "another tracing setting"
                + ("" if record.trace_id else " or before tracing existed")
            )
        assert trace_id is not None
        return build_trace(thread_id, trace_id, rows)

    def replay(self, thread_id: str) -> ReplayReport:
        """Re-run a run from its recordings with today's code and policy; report divergence.

        The model's answers come from model_calls, tool results from the ledger and the
        event log: nothing real is called. The re-run happens in a scratch database, so
        this file is not touched.
        """
        from agentrt.replay import replay_run

        return replay_run(self, thread_id)

    def prune(self, *, older_than: float, keep_latest: int = 0) -> list[str]:
        """Delete finished runs last updated more than ``older_than`` seconds ago.

        Their checkpoints, approvals, ledger entries, spans and model calls go with them;
        the newest ``keep_latest`` runs stay whatever their age. A run waiting at a gate,
        running, or stopped by a crash is never pruned. Returns the deleted thread ids.
        """
        if older_than < 0:
            raise ConfigError(f"older_than must be >= 0 seconds, got {older_than!r}")
        if keep_latest < 0:
            raise ConfigError(f"keep_latest must be >= 0, got {keep_latest!r}")
        doomed = recordings.prunable_runs(
            self.store, before=self.clock() - older_than, keep_latest=keep_latest
        )
        for thread_id in doomed:
            self._saver.delete_thread(thread_id)
            recordings.delete_run(self.store, thread_id)
        return doomed

    # driving ------------------------------------------------------------------------------

    def start(
        self,
        goal: str,
        *,
        principal: Principal,
        budget: Budget | None = None,
        thread_id: str | None = None,
    ) -> Run:
        """Start a run toward ``goal`` for ``principal``; returns when it ends or waits."""
        return self._drive(*self._create(goal, principal, budget, thread_id))

    def create(
        self,
        goal: str,
        *,
        principal: Principal,
        budget: Budget | None = None,
        thread_id: str | None = None,
    ) -> Run:
        """Write a run toward ``goal`` without driving it: status pending, nothing run yet.

        Checked exactly as start checks it. ``resume`` (or ``aresume``) carries it on, in
        this process or another: a service answers the request at once and drives the run
        in the background.
        """
        thread_id, _ = self._create(goal, principal, budget, thread_id)
        return self.get(thread_id)

    def decide(self, decision: Decision | dict[str, Any], *, resume: bool = True) -> Run:
        """Record a person's decision on an approval request, then carry the run on.

        Every check happens before anything is written: a refused decision leaves the
        request and the run exactly as they were. With ``resume=False`` the decision is
        only recorded and the run is returned as it is; ``resume`` carries it on later.
        """
        request = self._record_decision(decision)
        if not resume:
            return self.get(request.thread_id)
        try:
            return self.resume(request.thread_id)
        except RunBusy:
            # The decision is recorded; whoever holds the run will carry it on.
            return self.get(request.thread_id)

    def resume(self, thread_id: str) -> Run:
        """Carry a run on from its last checkpoint: after a crash, or after a decision."""
        graph_input = self._resume_input(thread_id)
        if graph_input is _NOTHING:
            return self.get(thread_id)
        return self._drive(thread_id, graph_input)

    def cancel(self, thread_id: str, *, reason: str) -> Run:
        """End a run that has not finished, as cancelled; its pending approvals are cancelled.

        A run another process is driving right now is asked to stop: it ends cancelled at
        its next step (never inside an effect), and the returned run says
        ``cancel_requested``. IllegalTransition if it already ended.
        """
        if not isinstance(reason, str) or not reason.strip():
            raise ConfigError(f"cancelling a run needs a reason in words, got {reason!r}")
        record = self._record(thread_id)
        if record.status in TERMINAL:
            raise IllegalTransition(thread_id, record.status.value, RunStatus.CANCELLED.value)
        owner = LeaseOwner.this_process(self._new_id())
        try:
            self.store.acquire_lease(thread_id, owner, self.lease_ttl)
        except RunBusy:
            self.store.request_cancel(thread_id, reason)
            try:  # the driver may have let go meanwhile, before it saw the request
                self.store.acquire_lease(thread_id, owner, self.lease_ttl)
            except RunBusy:
                return self.get(thread_id)
        try:
            return self._end(thread_id, RunStatus.CANCELLED, reason)
        finally:
            self.store.release_lease(thread_id, owner)

    async def astart(
        self,
        goal: str,
        *,
        principal: Principal,
        budget: Budget | None = None,
        thread_id: str | None = None,
    ) -> Run:
        """Async twin of start."""
        created = await asyncio.to_thread(self._create, goal, principal, budget, thread_id)
        return await self._adrive(*created)

    async def acreate(
        self,
        goal: str,
        *,
        principal: Principal,
        budget: Budget | None = None,
        thread_id: str | None = None,
    ) -> Run:
        """Async twin of create."""
        return await asyncio.to_thread(
            partial(self.create, goal, principal=principal, budget=budget, thread_id=thread_id)
        )

    async def adecide(self, decision: Decision | dict[str, Any], *, resume: bool = True) -> Run:
        """Async twin of decide."""
        request = await asyncio.to_thread(self._record_decision, decision)
        if not resume:
            return await asyncio.to_thread(self.get, request.thread_id)
        try:
            return await self.aresume(request.thread_id)
        except RunBusy:
            return await asyncio.to_thread(self.get, request.thread_id)

    async def aresume(self, thread_id: str) -> Run:
        """Async twin of resume."""
        graph_input = await asyncio.to_thread(self._resume_input, thread_id)
        if graph_input is _NOTHING:
            return await asyncio.to_thread(self.get, thread_id)
        return await self._adrive(thread_id, graph_input)

    # internals ----------------------------------------------------------------------------

    def _expire_due(
        self, now: float
    ) -> tuple[tuple[ApprovalRequest, ...], tuple[ApprovalRequest, ...]]:
        """Expire (or escalate) every request due at ``now``; those this call won, and the
        escalations it made."""
        expired: list[ApprovalRequest] = []
        escalated: list[ApprovalRequest] = []
        while due := self.store.due_approvals(now, limit=500):
            for request in due:
                follow = (
                    escalation_of(request, now=now)
                    if request.on_expiry == "escalate" and request.escalate_to
                    else None
                )
                if not self.store.expire_approval(request.id, now=now, escalation=follow):
                    continue  # decided (or swept) a moment ago by someone else
                expired.append(request)
                if follow is not None:
                    escalated.append(follow)
        return tuple(expired), tuple(escalated)

    def _config(self, thread_id: str) -> Any:
        return {"configurable": {"thread_id": thread_id}, "recursion_limit": _RECURSION_LIMIT}

    def _record(self, thread_id: str) -> RunRecord:
        if not isinstance(thread_id, str) or not thread_id:
            raise ConfigError(f"a thread id is a non-empty string, got {thread_id!r}")
        record = self.store.get_run(thread_id)
        if record is None:
            raise UnknownRun(thread_id, self.db)
        return record

    def budget_for(self, principal: Principal, budget: Budget | None = None) -> Budget:
        """The limits a run of ``principal`` gets: the runtime's default, then the tenant's,
        then ``budget``, each set field replacing the one before (None inherits)."""
        layered = self.budget
        tenant_budget = self.tenant_budgets.get(principal.tenant or "")
        if tenant_budget is not None:
            layered = tenant_budget.over(layered)
        return budget.over(layered) if budget is not None else layered

    def _check_enforceable(self, budget: Budget, where: str) -> None:
        """ConfigError if a limit cannot be enforced before the spend with this model."""
        if budget.max_cost_usd is not None and self.model_price is None:
            raise ConfigError(
                f"{where} sets max_cost_usd={budget.max_cost_usd!r}, but model "
                f"{self.model_name!r} has no price, so its calls would count as free; pass "
                f"prices={{{self.model_name!r}: (input_usd, output_usd)}} per million tokens"
            )
        limited = budget.max_tokens is not None or budget.max_cost_usd is not None
        if limited and self._cap_field is None and self._model_cap is None:
            raise ConfigError(
                f"{where} limits tokens or cost, but model {self.model_name!r} has no output "
                "cap agentrt can set (none of max_tokens, max_output_tokens, ...), so no call "
                "could be checked before it spends; use a model class that has one"
            )

    def _run(self, record: RunRecord) -> Run:
        waiting: list[ApprovalRequest] = []
        if record.status is RunStatus.AWAITING_APPROVAL:
            waiting = self.store.list_approvals(thread_id=record.thread_id, limit=1000)
            waiting.sort(key=_step_order)
        return Run(
            thread_id=record.thread_id,
            status=record.status,
            goal=record.goal,
            principal=Principal.from_dict(record.principal),
            output=record.output,
            error=record.error,
            usage=_with_waited(record.usage, record.waited_seconds, record.retry_waited_seconds),
            budget=Budget.from_dict(record.budget),
            budget_report=cast(BudgetReport | None, record.budget_report),
            pending_approval=waiting[0] if waiting else None,
            created_at=record.created_at,
            updated_at=record.updated_at,
            pending_approvals=tuple(waiting),
            cancel_requested=None if record.status in TERMINAL else record.cancel_requested,
            retry_at=record.retry_at if record.status is RunStatus.WAITING_RETRY else None,
        )

    def _create(
        self, goal: str, principal: Principal, budget: Budget | None, thread_id: str | None
    ) -> tuple[str, RunState]:
        if not isinstance(goal, str) or not goal.strip():
            raise ConfigError(f"a run needs a goal in words, got {goal!r}")
        if len(goal) > self.limits.goal_chars:
            raise ConfigError(
                f"the goal is {len(goal):,} characters, over the runtime's limit of "
                f"{self.limits.goal_chars:,} (SizeLimits.goal_chars); shorten it, or pass the "
                "material to a tool instead of the goal"
            )
        if not isinstance(principal, Principal):
            raise ConfigError(
                f"principal must be an agentrt Principal, got {principal!r}; "
                "e.g. Principal('alice', roles=['operator'], scopes=['orders:read'])"
            )
        if budget is not None and not isinstance(budget, Budget):
            raise ConfigError(f"budget must be an agentrt Budget, got {budget!r}")
        if thread_id is not None and (not isinstance(thread_id, str) or not thread_id):
            raise ConfigError(f"thread_id must be a non-empty string or None, got {thread_id!r}")
        given = {"goal": goal, "principal": principal.to_dict(), "thread_id": thread_id}
        if problem := unstorable(given, "run"):
            raise ConfigError(f"this run cannot be stored: {problem}; pass text only")
        effective = self.budget_for(principal, budget)
        self._check_enforceable(effective, "the run's budget")
        thread_id = thread_id or self._new_id()
        record = self.store.create_run(
            thread_id=thread_id,
            goal=goal,
            principal=principal.to_dict(),
            budget=effective.to_dict(),
            usage=empty_usage(),
            trace_id=new_trace_id(),
        )
        return thread_id, _initial_state(record)

    def _record_decision(self, decision: Decision | dict[str, Any]) -> ApprovalRequest:
        parsed = Decision.parse(decision)
        given = {"reason": parsed.reason, "args": parsed.args, "result": parsed.result}
        if problem := unstorable(given | {"by": parsed.by.to_dict()}, "decision"):
            raise InvalidDecision(
                f"decision on {parsed.approval_id!r} cannot be recorded: {problem}",
                approval_id=parsed.approval_id,
            )
        request = self.approval(parsed.approval_id)
        check_decision(request, parsed, now=self.clock())
        edited = None
        result = parsed.result
        if request.kind == "budget":
            edited = self._check_raise(request, parsed)
        elif parsed.outcome == "resolve":
            spec = self.tools.get(request.tool)
            result = spec.to_json(result) if spec else result
            problem = spec.check_output(result) if spec else None
            if problem is not None:
                raise InvalidDecision(
                    f"resolve of {request.id!r} rejected: {problem}; give the result as the "
                    "tool would have returned it",
                    approval_id=request.id,
                )
        elif parsed.outcome == "edit":
            spec = self.tools.get(request.tool)
            if spec is None:
                raise InvalidDecision(
                    f"edit of {request.id!r} refused: this app has no tool {request.tool!r} "
                    "to check the new arguments against; approve or reject instead",
                    approval_id=request.id,
                )
            assert parsed.args is not None
            try:
                edited = spec.validate_args(parsed.args)
            except ToolArgsError as exc:
                raise InvalidDecision(
                    f"edit of {request.id!r} rejected: {exc}", approval_id=request.id
                ) from None
        status = _DECISION_STATUS[parsed.outcome]
        if status is ApprovalStatus.EDITED and edited == request.args:
            # "Approve with these arguments" without changing them is an approval: recorded
            # as one, so the action runs instead of asking about itself again.
            status, edited = ApprovalStatus.APPROVED, None
        won = self.store.decide_approval(
            request.id,
            status,
            by=parsed.by.id,
            comment=parsed.reason,
            edited_args=edited,
            result=result,
        )
        if not won:
            latest = self.store.get_approval(request.id)
            if latest is not None and latest.status is not ApprovalStatus.PENDING:
                # Someone (a decider or the sweep) was first: say who, as any late call would.
                check_decision(latest, parsed, now=self.clock())
            raise AlreadyDecided(
                f"approval {request.id!r} was decided by "
                f"{latest.decided_by if latest else None!r} a moment earlier; nothing to do",
                approval_id=request.id,
            )
        return request

    def _check_raise(self, request: ApprovalRequest, decision: Decision) -> dict[str, Any] | None:
        """The new limit a decision on a "budget" request carries, checked; None for reject."""
        if decision.outcome == "reject":
            return None
        limit = request.args["limit"]
        if decision.outcome == "approve" or not decision.args:
            raise InvalidDecision(
                f"{request.id!r} asks to raise {limit}; decide it with "
                f"Decision.raise_limit({request.id!r}, limit={limit!r}, to=<new value>, by=...) "
                "(`agentrt raise-limit` on the command line), or reject it to end the run",
                approval_id=request.id,
            )
        if set(decision.args) != {limit}:
            raise InvalidDecision(
                f"{request.id!r} asks to raise {limit}, but the decision sets "
                f"{sorted(decision.args)!r}; give a new value for {limit!r} only",
                approval_id=request.id,
            )
        record = self._record(request.thread_id)
        try:
            raised = raised_budget(Budget.from_dict(record.budget), limit, decision.args[limit])
        except ConfigError as exc:
            raise InvalidDecision(
                f"cannot raise {limit} of run {request.thread_id!r}: {exc}", approval_id=request.id
            ) from None
        return {limit: getattr(raised, limit)}

    def _resume_input(self, thread_id: str) -> Any:
        """What to feed the graph to carry this run on, or _NOTHING if it cannot move now."""
        record = self._record(thread_id)
        if record.status in TERMINAL:
            return _NOTHING
        if record.cancel_requested is not None:
            # Asked while another process drove it, which let go before its next step.
            self.cancel(thread_id, reason=record.cancel_requested)
            return _NOTHING
        snapshot = self.graph.get_state(self._config(thread_id))
        if not snapshot.values:
            # Died before the first checkpoint: start over from the row, which holds it all.
            return _initial_state(record)
        if snapshot.interrupts:
            if self.store.list_approvals(thread_id=thread_id, limit=1):
                if record.status is not RunStatus.AWAITING_APPROVAL:
                    self.store.set_status(thread_id, RunStatus.AWAITING_APPROVAL)
                return _NOTHING  # still waiting for a person
            # The approval node reads the decision from the table, not from this value.
            return Command(resume={"decided": True})
        if not snapshot.next and not snapshot.tasks:
            # The graph finished, but the process died before the row said so. (A step
            # whose node writes were saved but whose next checkpoint was not has tasks
            # and no "next": invoking again applies those writes and goes on.)
            self._settle(thread_id, snapshot)
            return _NOTHING
        return None

    def _begin(self, thread_id: str) -> LeaseOwner:
        owner = LeaseOwner.this_process(self._new_id())
        self.store.acquire_lease(thread_id, owner, self.lease_ttl)
        record = self._record(thread_id)
        if record.status is not RunStatus.RUNNING:
            try:
                self.store.set_status(thread_id, RunStatus.RUNNING)
            except BaseException:
                self.store.release_lease(thread_id, owner)
                raise
        return owner

    def _drive(self, thread_id: str, graph_input: Any) -> Run:
        owner = self._begin(thread_id)
        try:
            with (
                _Heartbeat(self.store, thread_id, owner, self.lease_ttl),
                self._segment(thread_id) as span,
            ):
                try:
                    self.graph.invoke(graph_input, self._config(thread_id), durability="sync")
                except Exception as exc:  # a failed run is a result, not a crash
                    run = self._fail(thread_id, exc)
                else:
                    run = self._settle(thread_id, self.graph.get_state(self._config(thread_id)))
                    if run.cancel_requested is not None:  # asked after its last step
                        run = self._end(thread_id, RunStatus.CANCELLED, run.cancel_requested)
                self.tracing.set(span, {A.RUN_STATUS: run.status.value})
                return run
        finally:
            self.store.release_lease(thread_id, owner)

    async def _adrive(self, thread_id: str, graph_input: Any) -> Run:
        # The store's sync connection never runs on the event loop: waiting there for
        # SQLite's write lock would stall every run the loop drives.
        owner = await asyncio.to_thread(self._begin, thread_id)
        try:
            known = await asyncio.to_thread(recordings.run_trace, self.store, thread_id)
            deferred: list[Callable[[], None]] = []
            graph = self.graph  # a policy set meanwhile applies from the next segment
            async with _Heartbeat(self.store, thread_id, owner, self.lease_ttl):
                with self._segment(thread_id, known, deferred) as span:
                    await asyncio.to_thread(deferred.pop())
                    try:
                        await graph.ainvoke(graph_input, self._config(thread_id), durability="sync")
                    except Exception as exc:  # a failed run is a result, not a crash
                        run = await asyncio.to_thread(self._fail, thread_id, exc)
                    else:
                        snapshot = await graph.aget_state(self._config(thread_id))
                        run = await asyncio.to_thread(self._settle, thread_id, snapshot)
                        if run.cancel_requested is not None:  # asked after its last step
                            run = await asyncio.to_thread(
                                self._end, thread_id, RunStatus.CANCELLED, run.cancel_requested
                            )
                    self.tracing.set(span, {A.RUN_STATUS: run.status.value})
                    return run
        finally:
            await asyncio.to_thread(self.store.release_lease, thread_id, owner)

    @contextmanager
    def _segment(
        self,
        thread_id: str,
        known: tuple[str | None, str | None] | None = None,
        deferred: list[Callable[[], None]] | None = None,
    ) -> Iterator[Any]:
        """The agent.run span of one segment, in the run's trace, linked to the segment before.

        The span id is written to the runs row as the segment starts, so the next segment
        links to it even if this process dies mid-way.
        """
        if known is None:
            known = recordings.run_trace(self.store, thread_id)
        trace_id, previous = known
        trace_id = trace_id or new_trace_id()
        segment = "start" if previous is None else "resume"
        with self.tracing.run(
            thread_id, trace_id=trace_id, segment=segment, previous_span_id=previous
        ) as span:
            ctx = span.get_span_context()
            write = partial(
                recordings.set_trace,
                self.store,
                thread_id,
                trace_id,
                format(ctx.span_id, "016x") if ctx.is_valid else None,
            )
            if deferred is None:
                write()
            else:
                deferred.append(write)  # the async path writes it off the event loop
            yield span

    def _settle(self, thread_id: str, snapshot: StateSnapshot) -> Run:
        """Write what the graph ended with into the runs row."""
        values = snapshot.values
        usage = values.get("usage")
        if snapshot.interrupts:
            record = self.store.set_status(thread_id, RunStatus.AWAITING_APPROVAL, usage=usage)
        else:
            status = RunStatus(values["status"])
            if status not in TERMINAL:
                raise RuntimeError(
                    f"run {thread_id!r} stopped in status {status.value!r} with nothing next"
                )
            stop = values.get("stop") or {}
            record = self.store.set_status(
                thread_id,
                status,
                output=values.get("output"),
                error=values.get("error"),
                usage=usage,
                budget_report=stop.get("budget"),
            )
        return self._run(record)

    def _fail(self, thread_id: str, exc: Exception) -> Run:
        """A node raised past its retries: end the run as failed, in the graph and the row;
        or, for a failure that may pass, leave it waiting to be retried."""
        cause = transient_cause(exc)
        if cause is not None:
            failures = self._record(thread_id).transient_failures + 1
            delay = retry_delay(failures)
            logger.warning(
                "run %r waits to retry in %.0fs: %s", thread_id, delay, cause, exc_info=exc
            )
            record = self.store.set_status(
                thread_id,
                RunStatus.WAITING_RETRY,
                error=f"waiting to retry: {cause}",
                retry_at=self.clock() + delay,
            )
            return self._run(record)
        logger.error("run %r failed", thread_id, exc_info=exc)
        return self._end(thread_id, RunStatus.FAILED, f"{type(exc).__name__}: {exc}")

    def _end(self, thread_id: str, status: RunStatus, reason: str) -> Run:
        """End a run in ``status``, in the checkpoint and the row."""
        # Redacted here, at the source: an error quotes what failed (a provider's message
        # with the API key it was given), and the stored error is what every surface shows.
        reason = shown(reason, self.redactor)
        config = self._config(thread_id)
        snapshot = self.graph.get_state(config)
        if snapshot.values:
            # Mark the checkpoint itself terminal, so a resume has nothing left to run.
            self.graph.update_state(
                config,
                {
                    "status": status.value,
                    "error": reason,
                    "stop": {"status": status.value, "reason": reason},
                },
                as_node="finish",
            )
        usage = snapshot.values.get("usage") if snapshot.values else None
        return self._run(self.store.set_status(thread_id, status, error=reason, usage=usage))


class _Nothing:
    """Marker: the run cannot move now (finished, or waiting for a person)."""


_NOTHING: Any = _Nothing()


def _initial_state(record: RunRecord) -> RunState:
    return RunState(
        thread_id=record.thread_id,
        goal=record.goal,
        principal=record.principal,
        budget=record.budget,
        status=RunStatus.RUNNING.value,
        plan=None,
        cursor=0,
        verdict=None,
        outcome=None,
        usage=empty_usage(),
        output=None,
        error=None,
        stop=None,
        over_budget=None,
        events=[],
    )


def _with_waited(usage: Usage, waited: float, retry_waited: float = 0.0) -> Usage:
    """The run's usage with its time at human gates, once it has waited at one, and its
    time waiting to retry after failures that may pass."""
    if waited:
        usage = {**usage, "waited_seconds": waited}
    if retry_waited:
        usage = {**usage, "retry_waited_seconds": retry_waited}
    return usage


def _step_order(request: ApprovalRequest) -> tuple[tuple[int, int | str], ...]:
    """Plan order of a request's step id ('2.10' after '2.9')."""
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in request.step_id.split("."))


def _status(value: RunStatus | str) -> RunStatus:
    try:
        return RunStatus(value)
    except ValueError:
        raise ConfigError(
            f"unknown run status {value!r}; use one of {[s.value for s in RunStatus]!r}"
        ) from None
