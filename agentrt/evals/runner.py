"""Running an eval: every case (times --repeat) live on the app's runtime, scored.

Each run is a real run in the app's database, with a thread id that names the eval and
the case (``eval-<eval id>-<case>-<n>``): `agentrt show` and `agentrt trace` work on it
afterwards. A case with its own model answers (a script, or a recorded run's) runs on a
runtime built beside the app's: the same tools, policy, budgets, prices, instructions and
database, another model. Runs go concurrently (``concurrency`` at a time) on one event loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from langchain_core.language_models import BaseChatModel

from agentrt.approvals import Decision
from agentrt.evals.dataset import Case, Dataset, DatasetError
from agentrt.evals.judge import Judge, JudgeBudget
from agentrt.evals.report import EvalReport, RunResult
from agentrt.evals.schema import DecideSpec, ModelSpec
from agentrt.evals.scorers import checks_of
from agentrt.evals.trajectory import Trajectory
from agentrt.models import resolve_model
from agentrt.replay import recorded_model
from agentrt.runtime import AgentRuntime, Run
from agentrt.testing import ScriptedChatModel, ai, tool_call
from agentrt.tracing.shown import shown, shown_events

__all__ = ["arun_eval", "judge_for", "run_eval", "sibling"]

_MAX_GATES = 50
"""Gates one run may pass under a case's `decide` before the eval stops deciding."""


def run_eval(
    rt: AgentRuntime,
    dataset: Dataset,
    *,
    concurrency: int = 4,
    repeat: int = 1,
    judge: BaseChatModel | Judge | None = None,
    on_run: Callable[[RunResult], None] | None = None,
) -> EvalReport:
    """Run every case of ``dataset`` ``repeat`` times on ``rt`` and score each run."""
    return asyncio.run(
        arun_eval(rt, dataset, concurrency=concurrency, repeat=repeat, judge=judge, on_run=on_run)
    )


async def arun_eval(
    rt: AgentRuntime,
    dataset: Dataset,
    *,
    concurrency: int = 4,
    repeat: int = 1,
    judge: BaseChatModel | Judge | None = None,
    on_run: Callable[[RunResult], None] | None = None,
) -> EvalReport:
    """``run_eval`` for async callers. ``on_run`` hears of each run as it is scored."""
    if concurrency < 1:
        raise DatasetError(dataset.source, f"concurrency must be >= 1, got {concurrency!r}")
    if repeat < 1:
        raise DatasetError(dataset.source, f"repeat must be >= 1, got {repeat!r}")
    grader = judge_for(dataset, judge)
    for case in dataset.cases:
        recorded = case.spec.model.recorded if case.spec.model else None
        if recorded is not None and not rt.exists(recorded):
            raise DatasetError(
                dataset.source,
                f"no run {recorded!r} in {rt.store.location!r} to take the answers of",
                case=case.name,
                field="model.recorded",
            )
    eval_id = uuid.uuid4().hex[:8]
    gate = asyncio.Semaphore(concurrency)

    async def one(case: Case, n: int) -> RunResult:
        async with gate:
            result = await _run_case(rt, case, n, eval_id, grader)
        if on_run is not None:
            on_run(result)
        return result

    runs = await asyncio.gather(
        *(one(case, n) for case in dataset.cases for n in range(1, repeat + 1))
    )
    return EvalReport(dataset=dataset.name, eval_id=eval_id, runs=tuple(runs), repeat=repeat)


def judge_for(dataset: Dataset, given: BaseChatModel | Judge | None) -> Judge | None:
    """The judge of the cases with a rubric: ``given``, else the dataset's judge.model."""
    judged = [c for c in dataset.cases if c.spec.judge is not None]
    if not judged:
        return None
    if isinstance(given, Judge):
        return given
    config = dataset.judge
    budget = JudgeBudget(
        max_tokens=config.max_tokens, max_cost_usd=config.max_cost_usd, max_calls=config.max_calls
    )
    if given is not None:
        return Judge(given, budget=budget)
    if config.model is None:
        raise DatasetError(
            dataset.source,
            "the case has a judge rubric but no judge model is given: set judge.model in "
            "the dataset, or pass --judge module:attribute",
            case=judged[0].name,
            field="judge",
        )
    return Judge(resolve_model(config.model), budget=budget)


def sibling(rt: AgentRuntime, model: BaseChatModel) -> AgentRuntime:
    """A runtime like ``rt`` (tools, policy, budgets, prices, instructions, database) that
    plans with ``model``. The caller closes it."""
    prices = {rt.model_name: rt.model_price} if rt.model_name and rt.model_price else None
    return AgentRuntime(
        model,
        tools=list(rt.tools),
        policy=rt.policy,
        db=rt.db,
        redactor=rt.redactor,
        budget=rt.budget,
        tenant_budgets=rt.tenant_budgets,
        prices=prices,
        instructions=rt.deps.instructions,
        clock=rt.clock,
        lease_ttl=rt.lease_ttl,
        model_retry=rt.deps.model_retry,
        limits=rt.limits,
        credentials=rt.deps.credentials,
    )


def _model_of(rt: AgentRuntime, spec: ModelSpec) -> BaseChatModel:
    if spec.recorded is not None:
        return recorded_model(rt, spec.recorded)
    steps: list[Any] = [
        turn
        if isinstance(turn, str)
        else ai(turn.content, *(tool_call(c.name, c.args) for c in turn.tool_calls))
        for turn in spec.script or []
    ]
    return ScriptedChatModel(steps, model_name=spec.name or rt.model_name or "scripted")


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")[:40] or "case"


async def _run_case(
    rt: AgentRuntime, case: Case, n: int, eval_id: str, judge: Judge | None
) -> RunResult:
    thread_id = f"eval-{eval_id}-{_slug(case.name)}-{n}"
    target, own = rt, None
    started = time.perf_counter()
    try:
        if case.spec.model is not None:
            own = await asyncio.to_thread(sibling, rt, _model_of(rt, case.spec.model))
            target = own
        started = time.perf_counter()
        run = await target.astart(
            case.spec.goal, principal=case.principal, budget=case.budget, thread_id=thread_id
        )
        run = await _gates(target, run, case.decide)
        latency = time.perf_counter() - started
        events = await asyncio.to_thread(target.events, thread_id)
    except Exception as exc:  # a case that cannot run fails alone; the eval goes on
        error = shown(f"{type(exc).__name__}: {exc}", rt.redactor)
        status = rt.get(thread_id).status.value if rt.exists(thread_id) else "not started"
        return RunResult(
            case=case.name,
            repeat=n,
            thread_id=thread_id,
            status=status,
            scores=(),
            latency_seconds=time.perf_counter() - started,
            error=error,
        )
    finally:
        if own is not None:
            await asyncio.to_thread(own.close)
    trajectory = Trajectory.of(run, events, latency_seconds=latency)
    scores = [check(trajectory) for check in checks_of(case)]
    if case.spec.judge is not None and judge is not None:
        spec = case.spec.judge
        rubric, pass_score = (
            (spec, 0.5) if isinstance(spec, str) else (spec.rubric, spec.pass_score)
        )
        scores.append(await judge.score(rubric, _masked(rt, trajectory), pass_score=pass_score))
    u = trajectory.usage
    return RunResult(
        case=case.name,
        repeat=n,
        thread_id=thread_id,
        status=trajectory.status,
        # Reasons quote outputs and arguments: they pass the masking path like any screen.
        scores=tuple(dataclasses.replace(s, reason=shown(s.reason, rt.redactor)) for s in scores),
        cost_usd=u["cost_usd"],
        tokens=u["tokens"],
        steps=u["steps"],
        tool_calls=u["tool_calls"],
        latency_seconds=latency,
    )


async def _gates(target: AgentRuntime, run: Run, decide: DecideSpec | None) -> Run:
    """Decide every approval gate the run meets as the case says, until it ends or waits
    on something else (a reconcile, a budget raise)."""
    for _ in range(_MAX_GATES):
        request = run.pending_approval
        if request is None or decide is None or request.kind != "action":
            break
        by = decide.by.principal()
        decision = (
            Decision.approve(request.id, by=by)
            if decide.decision == "approve"
            else Decision.reject(request.id, by=by, reason=decide.reason)
        )
        run = await target.adecide(decision)
    return run


def _masked(rt: AgentRuntime, t: Trajectory) -> Trajectory:
    """The trajectory as a person may see it: what the judge is shown."""
    events: Any = shown_events(t.events, rt.redactor, rt.tools.sensitive_of)
    return dataclasses.replace(
        t, goal=shown(t.goal, rt.redactor), output=shown(t.output, rt.redactor), events=events
    )
