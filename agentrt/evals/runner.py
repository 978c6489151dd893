"""Running an eval: every case (times --repeat) live on the app's runtime, scored.

Each run is a real run in the app's database, with a thread id that names the eval and
the case (``eval-<eval id>-<case number>-<case>-<n>``): `agentrt show` and `agentrt trace`
work on it afterwards. A case with its own model answers (a script, or a recorded run's)
runs on a runtime built beside the app's: the same tools, policy, budgets, prices,
instructions and database, another model. Runs go concurrently (``concurrency`` at a time)
on one event loop.

A run left waiting once scored (at an approval gate the case does not decide, or to retry)
is cancelled, its requests with it: a test case leaves nothing in the review queue that a
reviewer could approve into a real effect, and nothing a worker would drive on.
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
from agentrt.evals.preflight import check_on_app, sibling_prices
from agentrt.evals.report import EvalReport, RunResult
from agentrt.evals.schema import ModelSpec
from agentrt.evals.scorers import checks_of
from agentrt.evals.trajectory import Trajectory
from agentrt.logs import get_logger
from agentrt.models import resolve_model
from agentrt.replay import recorded_model
from agentrt.runtime import AgentRuntime, Run
from agentrt.state import TERMINAL
from agentrt.steps import to_thread_unbroken
from agentrt.testing import ScriptedChatModel, ai, tool_call
from agentrt.tracing.shown import log_secrets, shown, shown_events

__all__ = ["arun_eval", "judge_for", "run_eval", "sibling"]

logger = get_logger()

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
    check_on_app(rt, dataset)
    eval_id = uuid.uuid4().hex[:8]
    gate = asyncio.Semaphore(concurrency)

    async def one(case: Case, number: int, n: int) -> RunResult:
        # The case's number keeps thread ids apart where names slug alike ("a b", "a/b").
        thread_id = f"eval-{eval_id}-{number}-{_slug(case.name)}-{n}"
        async with gate:
            result = await _run_case(rt, case, n, thread_id, grader)
        if on_run is not None:
            on_run(result)
        return result

    runs = await asyncio.gather(
        *(
            one(case, number, n)
            for number, case in enumerate(dataset.cases, start=1)
            for n in range(1, repeat + 1)
        )
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
    """A runtime like ``rt`` (tools, policy, budgets, prices, instructions, database, app)
    that plans with ``model``. The caller closes it."""
    prices = sibling_prices(rt)
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
        app=rt.app.name,  # its runs are the app's: its workers, not another app's, carry them on
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
    rt: AgentRuntime, case: Case, n: int, thread_id: str, judge: Judge | None
) -> RunResult:
    """One run of ``case``, scored; it fails alone whatever goes wrong, and is left
    waiting on nothing, the eval stopped midway too."""
    started = time.perf_counter()
    if await asyncio.to_thread(rt.exists, thread_id):  # not this case's run: left alone
        return RunResult(
            case=case.name,
            repeat=n,
            thread_id=thread_id,
            status="not started",
            scores=(),
            error=f"thread {thread_id!r} is taken in {rt.store.location!r}; run the eval again",
        )
    target, own = rt, None
    try:
        try:
            if case.spec.model is not None:
                model = _model_of(rt, case.spec.model)
                own = await to_thread_unbroken(sibling, rt, model)  # made, it is closed
                target = own
            started = time.perf_counter()
            result = await _scored(rt, target, case, n, thread_id, judge=judge)
        except Exception as exc:  # a case that cannot run fails alone; the eval goes on
            result = await _failed(rt, case, n, thread_id, exc, started=started)
        return await _no_longer_waiting(rt, target, thread_id, result)
    except BaseException as stop:
        # The eval stopped midway (Ctrl-C, a CI job's timeout: its task cancelled): no
        # report will say the run was left waiting, so it is cancelled all the same.
        if not isinstance(stop, GeneratorExit):  # a coroutine closed unrun awaits nothing
            await _stopped(rt, target, thread_id)
        raise
    finally:
        if own is not None:
            await to_thread_unbroken(own.close)


async def _no_longer_waiting(
    rt: AgentRuntime, target: AgentRuntime, thread_id: str, result: RunResult
) -> RunResult:
    """``result``, its run cancelled if it waits once scored; a run that could not be
    cancelled fails, saying how to cancel it."""
    try:
        if await to_thread_unbroken(_cancel_if_waiting, target, thread_id, "once scored"):
            return dataclasses.replace(result, cancelled=True)
        return result
    except Exception as exc:  # a live request stays: the run fails, and says so
        problem = await _not_cancelled(rt, thread_id, exc)
        said = f"{result.error}; " if result.error else ""
        return dataclasses.replace(result, error=said + problem)


async def _stopped(rt: AgentRuntime, target: AgentRuntime, thread_id: str) -> None:
    """Cancel the run of an eval that stopped midway if it waits; a cancel that comes
    again waits for it. No report follows: a run that could not be cancelled is logged."""
    try:
        await to_thread_unbroken(_cancel_if_waiting, target, thread_id, "when the eval stopped")
    except Exception as exc:
        logger.warning(await _not_cancelled(rt, thread_id, exc))


async def _not_cancelled(rt: AgentRuntime, thread_id: str, exc: Exception) -> str:
    """What to say of a run the eval could not cancel, masked as every screen shows it."""
    try:
        known = await to_thread_unbroken(_secrets, rt, thread_id)
        why = f"{type(exc).__name__}: {exc}"
    except Exception:  # with no log to mask it by, what the error quotes is not said
        known, why = [], type(exc).__name__
    said = (
        f"the run is left waiting, not cancelled ({why}); "
        f"cancel it: agentrt cancel {thread_id} --reason 'an eval run'"
    )
    return str(shown(said, rt.redactor, known=known))


def _secrets(rt: AgentRuntime, thread_id: str) -> list[Any]:
    """The secret values the run's log holds (``log_secrets``), none if there is no run:
    a text that quotes the run is shown masked with them, as every screen shows it."""
    if not rt.exists(thread_id):
        return []
    return rt.log_secrets(thread_id)


async def _failed(
    rt: AgentRuntime, case: Case, n: int, thread_id: str, exc: Exception, *, started: float
) -> RunResult:
    exists = await asyncio.to_thread(rt.exists, thread_id)
    status = (await asyncio.to_thread(rt.get, thread_id)).status.value if exists else None
    known = await asyncio.to_thread(_secrets, rt, thread_id) if exists else []
    return RunResult(
        case=case.name,
        repeat=n,
        thread_id=thread_id,
        status=status or "not started",
        scores=(),
        latency_seconds=time.perf_counter() - started,
        error=shown(f"{type(exc).__name__}: {exc}", rt.redactor, known=known),
    )


async def _scored(
    rt: AgentRuntime,
    target: AgentRuntime,
    case: Case,
    n: int,
    thread_id: str,
    *,
    judge: Judge | None,
) -> RunResult:
    started = time.perf_counter()
    run = await target.astart(
        case.spec.goal, principal=case.principal, budget=case.budget, thread_id=thread_id
    )
    run = await _gates(target, run, case)
    latency = time.perf_counter() - started
    events = await asyncio.to_thread(target.events, thread_id)
    trajectory = Trajectory.of(run, events, latency_seconds=latency)
    scores = [check(trajectory) for check in checks_of(case)]
    # An answer may repeat a sensitive argument: what the report and the judge are given
    # of the run is masked with the secret values its log holds, as every screen masks it.
    known = await asyncio.to_thread(log_secrets, events, rt.redactor, rt.tools.sensitive_of)
    if case.spec.judge is not None and judge is not None:
        spec = case.spec.judge
        rubric, pass_score = (
            (spec, 0.5) if isinstance(spec, str) else (spec.rubric, spec.pass_score)
        )
        shown_to = _masked(rt, trajectory, known)
        scores.append(await judge.score(rubric, shown_to, pass_score=pass_score))
    u = trajectory.usage
    return RunResult(
        case=case.name,
        repeat=n,
        thread_id=thread_id,
        status=trajectory.status,
        # Reasons quote outputs and arguments: they pass the masking path like any screen.
        scores=tuple(
            dataclasses.replace(s, reason=shown(s.reason, rt.redactor, known=known)) for s in scores
        ),
        cost_usd=u["cost_usd"],
        tokens=u["tokens"],
        steps=u["steps"],
        tool_calls=u["tool_calls"],
        latency_seconds=latency,
    )


def _cancel_if_waiting(target: AgentRuntime, thread_id: str, when: str) -> bool:
    """Cancel the case's run if it waits (a request no one decided, a retry due): an
    eval's runs are real, and a test case must leave no request a reviewer could approve
    into a real effect. True if it was cancelled (or asked to stop); an error if it could
    not be."""
    if not target.exists(thread_id):
        return False
    waiting = target.get(thread_id).status
    if waiting in TERMINAL:
        return False
    target.cancel(
        thread_id,
        reason=f"an eval's run, left {waiting.value} {when}: cancelled with its requests",
    )
    return True


async def _gates(target: AgentRuntime, run: Run, case: Case) -> Run:
    """Decide every approval gate the run meets as the case says, until it ends or waits
    on something else (a reconcile, a budget raise)."""
    decide, by = case.decide, case.decider
    for _ in range(_MAX_GATES):
        request = run.pending_approval
        if request is None or decide is None or by is None or request.kind != "action":
            break
        decision = (
            Decision.approve(request.id, by=by)
            if decide.decision == "approve"
            else Decision.reject(request.id, by=by, reason=decide.reason)
        )
        run = await target.adecide(decision)
    return run


def _masked(rt: AgentRuntime, t: Trajectory, known: list[Any]) -> Trajectory:
    """The trajectory as a person may see it, masked too with ``known`` (the secret values
    its log holds): what the judge is shown."""
    events: Any = shown_events(t.events, rt.redactor, rt.tools.sensitive_of)
    calls = tuple(
        dataclasses.replace(
            c,
            args=shown(c.args, rt.redactor, sensitive=fields, known=known),
            content=shown(c.content, rt.redactor, sensitive=fields, known=known),
        )
        for c in t.calls
        for fields in [rt.tools.sensitive_of(c.tool)]
    )
    return dataclasses.replace(
        t,
        goal=shown(t.goal, rt.redactor, known=known),
        output=shown(t.output, rt.redactor, known=known),
        error=shown(t.error, rt.redactor, known=known),
        calls=calls,
        events=events,
    )
