"""AgentRuntime: the one object an app holds. Start, decide, resume and inspect runs.

A thin door: it checks its configuration and wires the parts, and each operation is one
line into the room that does it (runs/ drives runs, approvals/ keeps the gates, store/
keeps the data). The sync and async flavour of an operation are the same code driven two
ways (agentrt.runs.ops).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any

from langchain_core.language_models import BaseChatModel
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import RetryPolicy
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider
from typing_extensions import Unpack

from agentrt.apikeys import ApiKeys
from agentrt.approvals.model import Decision
from agentrt.budget import Budget, ModelPrice, find_price, price_table
from agentrt.errors import ConfigError
from agentrt.governed import OwnGraphs
from agentrt.governed.door import OwnGraphDoor
from agentrt.graphs import DEFAULT_INSTRUCTIONS, RunDeps, build_run_graph
from agentrt.limits import SizeLimits
from agentrt.logs import get_logger, redact_logs, stop_redacting_logs
from agentrt.models import (
    default_model_retry,
    model_name_of,
    output_cap,
    output_cap_field,
    priced,
    reporting_usage,
    resolve_model,
)
from agentrt.policies import Policy
from agentrt.principal import Principal
from agentrt.replay import ReplayReport, replay_run
from agentrt.runs.apps import app_identity
from agentrt.runs.budgets import DEFAULT_BUDGET, BudgetLayers
from agentrt.runs.conversing import Conversing
from agentrt.runs.driver import Driver, NewRunRequest
from agentrt.runs.messages import DoubleTexting, check_double_texting
from agentrt.runs.reading import RunReading
from agentrt.runs.record import Run, Sweep, run_of
from agentrt.runs.streaming import astreamed, streamed
from agentrt.runs.workers import Worker, WorkerSettings
from agentrt.state import RunState
from agentrt.steps import Steps, asynchronous, blocking, synchronous
from agentrt.store import is_postgres, open_store, sqlite_path
from agentrt.store.sqlite.database import foreign_tables
from agentrt.summaries import Summarize, Summarizing
from agentrt.tools.credentials import Credentials, check_provider
from agentrt.tools.execution import ToolRunner
from agentrt.tools.ledger import Ledger
from agentrt.tools.memory import Memory, memory_for
from agentrt.tools.registry import ToolLike, ToolRegistry
from agentrt.tracing import Redactor, RunTracing, make_provider
from agentrt.tracing.metrics import RunMetrics, make_meter, metric_points
from agentrt.webhooks import Dispatcher, Webhooks

__all__ = ["DEFAULT_BUDGET", "AgentRuntime", "Run", "Sweep"]

logger = get_logger()


class AgentRuntime(RunReading, OwnGraphDoor, Conversing):
    """A durable agent runtime over one database: a SQLite file by default, or PostgreSQL
    (``db="postgresql://..."``, the postgres extra) shared by processes on many machines.

    Every run is a thread of the compiled run graph (``rt.graph``), checkpointed after each
    step, with a row in the runs table written before the first node runs. A run stopped at
    an approval gate, or whose process died, goes on from its thread id in any process that
    opens the same database.
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
        metrics: bool | MeterProvider = True,
        summarize: Summarize | None = None,
        webhooks: Webhooks | None = None,
        double_texting: DoubleTexting | str = DoubleTexting.REJECT,
        credentials: Credentials | None = None,
        name: str = "agentrt",
        app: str | None = None,
    ) -> None:
        _check_settings(
            capture_content=capture_content,
            lease_ttl=lease_ttl,
            name=name,
            typed={
                "redactor": (redactor, Redactor),
                "limits": (limits, SizeLimits),
                "budget": (budget, Budget),
                "webhooks": (webhooks, Webhooks),
            },
        )
        self.limits = limits or SizeLimits()
        """Largest goal, tool arguments and tool result a run keeps."""
        self.webhooks = webhooks or Webhooks()  # none by default: events wait in the outbox
        self.double_texting: DoubleTexting = check_double_texting(double_texting)
        """What a message does that comes while its thread is busy (agentrt.runs.messages):
        reject, enqueue or interrupt; ``send`` may say otherwise per call."""
        self.db = str(db)
        self.tools = ToolRegistry(tools)
        """The tools runs may call. Toolsets start here (their tools are known only then),
        on the tool loop where async tools run; close() closes them."""
        self.tools.start()
        try:
            policy = self._checked(policy if policy is not None else Policy.cautious())
            self.tools.override(policy.tool_settings)
            needs = {n: spec.credentials for n in self.tools.names() if (spec := self.tools.get(n))}
            check_provider(needs, credentials)
            self.app = app_identity(app, self.tools.names())
            """Which app this is (agentrt.runs.apps): its name, if given, and its tools. Its
            runs record it; its workers claim the runs it may drive."""
            chat = reporting_usage(resolve_model(model))
            self.model_name = model_name_of(chat)
            """The planner model's name, as its price is looked up."""
            self._prices = price_table(prices)
            self.model_price = priced(self.model_name, self._prices)
            """What the model charges; None if neither the table nor prices= knows it."""
            summarizing = self._summarizing(summarize, chat)
            self._budgets = BudgetLayers(
                default=DEFAULT_BUDGET if budget is None else budget.over(DEFAULT_BUDGET),
                tenants=dict(tenant_budgets or {}),
                model_name=self.model_name,
                model_price=self.model_price,
                can_cap=output_cap_field(chat) is not None or output_cap(chat) is not None,
                summarizing=summarizing,
            )
            self.clock = clock
            self.lease_ttl = lease_ttl
            opened = open_store(self.db, clock=clock)
            self.store = opened.store
            """The runtime's database, behind agentrt.store.protocols.Store."""
            self._opened = opened
            self._tracing_setup = make_provider(tracing, self.store)
            # The default hashes with this database's own random salt: a known salt would let
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
                flush=self._tracing_setup.provider.force_flush
                if self._tracing_setup.provider is not None
                else None,
                stored=tracing == "sqlite",
                agent_name=name,
                metrics=self._run_metrics(metrics, tracing, name),
            )
            """The runtime's spans and metrics (``export_failures``: spans an exporter lost)."""
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
                    sleep=sleep,
                    rand=rand,
                    clock=clock,
                    max_result_bytes=self.limits.result_bytes,
                    inline_result_bytes=self.limits.inline_result_bytes,
                ),
                instructions=instructions,
                model_retry=model_retry or default_model_retry(chat),
                model_price=self.model_price,
                limits=self.limits,
                summarize=summarizing,
                memories=opened.memories,
                credentials=credentials,
            )
            self.graph: CompiledStateGraph[RunState, None, RunState, RunState] = build_run_graph(
                self.deps, opened.checkpointer
            )
            """The compiled run graph, checkpointed to ``db``; embed it or draw it (set_policy
            compiles a new one)."""
            self.keys = ApiKeys(self.store, clock=clock, where=self.store.location)
            """The service's API keys in this database: create, list, revoke, authenticate."""
            self._driver = Driver(
                self.deps,
                graph=lambda: self.graph,
                redactor=self.redactor,
                budgets=self._budgets,
                lease_ttl=lease_ttl,
                new_id=new_id,
                own_graphs=OwnGraphs(self.store),
                app=self.app,
            )
        except BaseException:
            # A toolset the runtime started (an MCP server) is not left running when the
            # rest cannot be built (a bad model, a database it cannot open).
            self.tools.close()
            raise

    # configuration ------------------------------------------------------------------------

    @property
    def budget(self) -> Budget:
        """The default limits of every run (over DEFAULT_BUDGET)."""
        return self._budgets.default

    @property
    def tenant_budgets(self) -> dict[str, Budget]:
        """Per tenant: limits layered over the default for that tenant's runs."""
        return dict(self._budgets.tenants)

    def budget_for(self, principal: Principal, budget: Budget | None = None) -> Budget:
        """The limits a run of ``principal`` gets: the runtime's default, then the tenant's,
        then ``budget``, each set field replacing the one before (None inherits)."""
        return self._budgets.for_run(principal, budget)

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
        self.tools.override(checked.tool_settings)
        self.deps = replace(self.deps, policy=checked)
        self.graph = build_run_graph(self.deps, self._opened.checkpointer)

    def _checked(self, policy: Policy) -> Policy:
        if not isinstance(policy, Policy):
            raise ConfigError(f"policy must be an agentrt Policy, got {policy!r}")
        policy.check_tools(
            self.tools.names(), servers=self.tools.servers(), credentials=self.tools.credentials()
        )
        return policy

    # lifecycle ----------------------------------------------------------------------------

    def close(self) -> None:
        """Close the database connections, flush and stop the span exporter we built, and
        stop renewing leases."""
        stop_redacting_logs(self.redactor, self)
        self.tools.close()
        self._driver.leases.close()
        if self._tracing_setup.provider is not None:
            self._tracing_setup.provider.shutdown()
        if self._metrics_setup.provider is not None:
            self._metrics_setup.provider.shutdown()  # exports what is left
        self._opened.close()

    @property
    def export_failures(self) -> int:
        """Span batches the exporter failed to deliver (each logged); the runs went on."""
        exporter = self._tracing_setup.exporter
        return exporter.failures if exporter is not None else 0

    def _summarizing(self, summarize: Summarize | None, chat: BaseChatModel) -> Summarizing | None:
        if summarize is not None and not isinstance(summarize, Summarize):
            raise ConfigError(f"summarize must be an agentrt Summarize, got {summarize!r}")
        self.summarize = summarize
        """When a long run's older turns are condensed (None: never)."""
        if summarize is None:
            return None
        if summarize.model is None:
            return Summarizing(settings=summarize, model=chat, price=self.model_price)
        writer = reporting_usage(summarize.model)
        price = find_price(model_name_of(writer), self._prices)  # prices= over the table
        return Summarizing(settings=summarize, model=writer, price=price)

    def _run_metrics(self, setting: Any, tracing: Any, name: str) -> RunMetrics:
        setup = self._metrics_setup = make_meter(setting, tracing)
        return RunMetrics(setup.meter, app=name, model=self.model_name, summed=setup.summed)

    def metrics(self) -> dict[str, list[dict[str, Any]]]:
        """The runtime's metrics as they stand, by name (agentrt.runs.started, ...): each
        point's attributes and value, read from memory with no collector. Empty when
        ``metrics=`` handed them to the caller's MeterProvider or turned them off."""
        return metric_points(self._metrics_setup.reader)

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

    def _get(self, thread_id: str) -> Steps[Run]:
        """The run with this thread id; UnknownRun if there is none."""
        run: Run = yield blocking(self._driver.get, thread_id)
        return run

    get = synchronous(_get)
    aget = asynchronous(_get)

    def memory(self, tenant: str | None, *, principal: str | None = None) -> Memory:
        """Tenant ``tenant``'s long-term memory, as its runs' tools see it (``principal``:
        that principal's own items): to read, seed or clean up what runs remember.
        ConfigError for an empty ``tenant`` or ``principal``."""
        return memory_for(self._opened.memories, tenant, principal)

    def replay(self, thread_id: str, *, policy: Policy | None = None) -> ReplayReport:
        """Re-run a run from its recordings with today's code and policy; report divergence.

        The model's answers come from model_calls, tool results from the ledger and the
        run's checkpoints: nothing real is called. The re-run happens in a scratch database, so
        this one is not touched. ``policy``: decide the re-run's actions by this policy
        instead of the runtime's (a what-if for a policy not yet live).
        """
        return replay_run(self, thread_id, build=AgentRuntime, policy=policy)

    # driving: each operation written once (runs/driver.py), driven sync or async ---------

    def _start(self, goal: str, **request: Unpack[NewRunRequest]) -> Steps[Run]:
        """Start a run toward ``goal`` for ``principal``; returns when it ends or waits.
        ``budget`` layers over the runtime's and the tenant's limits; ``thread_id``: None
        for a new id, a given id must be new."""
        return self._driver.start(goal, **request)

    start = synchronous(_start)
    astart = asynchronous(_start)

    def _create(self, goal: str, **request: Unpack[NewRunRequest]) -> Steps[Run]:
        """Write a run toward ``goal`` without driving it: status pending, nothing run yet.

        Checked exactly as start checks it. ``resume`` (or ``aresume``) carries it on, in
        this process or another: a service answers the request at once and drives the run
        in the background.
        """
        # Answered with the row as written: reading it back would only cost a round trip.
        record = yield blocking(self._driver.new_run, goal, **request)
        return run_of(record, self.store)

    create = synchronous(_create)
    acreate = asynchronous(_create)

    def _decide(self, decision: Decision | dict[str, Any], *, resume: bool = True) -> Steps[Run]:
        """Record a person's decision on an approval request, then carry the run on.

        Every check happens before anything is written: a refused decision leaves the
        request and the run exactly as they were. With ``resume=False`` the decision is
        only recorded and the run is returned as it is; ``resume`` carries it on later.
        """
        return self._driver.decide(decision, resume)

    decide = synchronous(_decide)
    adecide = asynchronous(_decide)

    def _resume(self, thread_id: str) -> Steps[Run]:
        """Carry a run on from its last checkpoint: after a crash, a decision, or a wait to
        retry."""
        own = yield blocking(self._own.for_resume, thread_id)
        if own is not None:  # a thread of the app's own graph: that graph carries it on
            carried: Run = yield from own
            return carried
        resumed: Run = yield from self._driver.resume(thread_id)
        return resumed

    resume = synchronous(_resume)
    aresume = asynchronous(_resume)

    # The same operations, watched: their events as they happen (runs/streaming.py).
    stream, astream = streamed(_start), astreamed(_start)
    stream_resume, astream_resume = streamed(_resume), astreamed(_resume)
    stream_decide, astream_decide = streamed(_decide), astreamed(_decide)

    def _sweep_approvals(self, now: float | None = None, *, resume: bool = True) -> Steps[Sweep]:
        """Expire every pending request whose time is up, and carry its run on.

        The rule that asked for the approval says what expiry means: reject (the planner
        is told it expired) or escalate (a new request, for another role, linked to the
        old one; the run keeps waiting). Each expiry is a conditional update, so sweeping
        twice is a no-op and a decider racing the sweep either wins or gets ApprovalExpired.
        With ``resume=False`` the runs are returned as they are, for the caller to carry on.
        """
        return self._driver.sweep(now, resume)

    sweep_approvals = synchronous(_sweep_approvals)
    asweep_approvals = asynchronous(_sweep_approvals)

    def worker(
        self, *, concurrency: int = 8, poll: float | None = None, sweep_every: float | None = 30.0
    ) -> Worker:
        """A worker over this runtime's database: ``run()`` claims the runs that need a
        driver (made with ``create``, decided with ``resume=False``, left by a stopped or
        dead process, due to retry) and that this app may drive (agentrt.runs.apps), and
        drives them, ``concurrency`` at a time, until ``stop()``. Any number of workers may
        share the database; ``agentrt worker`` runs one. See agentrt.runs.workers."""
        settings = WorkerSettings(concurrency=concurrency, poll=poll, sweep_every=sweep_every)
        return Worker(self._driver, settings)

    def dispatcher(self, *, poll: float = 1.0) -> Dispatcher:
        """A dispatcher of this runtime's webhooks: ``run()`` sends the outbox's events to
        its endpoints until ``stop()``; ``deliver_due()`` is one pass. ``agentrt serve``,
        ``agentrt worker`` and ``agentrt notify`` run one. See agentrt.webhooks."""
        return Dispatcher(
            self.store,
            self.webhooks,
            clock=self.clock,
            poll=poll,
            redactor=self.redactor,
            # A run's goal and error are sent masked as every surface shows them.
            secrets_of=self.log_secrets,
        )

    def cancel(self, thread_id: str, *, reason: str) -> Run:
        """End a run that has not finished, as cancelled; its pending approvals are cancelled.

        A run another process is driving right now is asked to stop: it ends cancelled at
        its next step (never inside an effect), and the returned run says
        ``cancel_requested``. IllegalTransition if it already ended.
        """
        own = self._own.cancel(thread_id, reason=reason, now=self.clock())
        return own if own is not None else self._driver.cancel(thread_id, reason=reason)


def sqlite_file(db: str) -> str | None:
    """The SQLite file ``db`` names; None for a server (ConfigError: another scheme)."""
    return None if is_postgres(db) else sqlite_path(db)


def other_applications_tables(path: str | Path) -> list[str]:
    """The tables of the SQLite file at ``path`` if none is agentrt's: another app's file."""
    return foreign_tables(path)


def _check_settings(
    *,
    capture_content: object,
    lease_ttl: float,
    name: object,
    typed: dict[str, tuple[object, type]],
) -> None:
    """ConfigError naming the first of AgentRuntime's arguments that is not what it must be
    (``typed``: each optional argument and the agentrt type it must have when given)."""
    if not isinstance(capture_content, bool):
        raise ConfigError(f"capture_content must be True or False, got {capture_content!r}")
    for what, (given, kind) in typed.items():
        if given is not None and not isinstance(given, kind):
            raise ConfigError(f"{what} must be an agentrt {kind.__name__}, got {given!r}")
    if not (isinstance(lease_ttl, int | float) and math.isfinite(lease_ttl) and lease_ttl > 0):
        raise ConfigError(f"lease_ttl must be a number of seconds > 0, got {lease_ttl!r}")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"name must be the agent's name in words, got {name!r}")
