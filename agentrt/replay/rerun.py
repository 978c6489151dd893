"""Re-running a run from its recordings in a scratch database, and comparing the two logs."""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from langgraph.types import RetryPolicy

from agentrt.budget import Budget, ModelPrice
from agentrt.errors import ConfigError
from agentrt.events import describe
from agentrt.logs import quiet
from agentrt.nodes.deps import RunDeps
from agentrt.policies import Policy
from agentrt.redaction import Redactor
from agentrt.replay.answers import replay_model
from agentrt.replay.gates import answer_gates
from agentrt.replay.recording import Graph, Recording
from agentrt.replay.report import Replayed, ReplayReport, compare
from agentrt.state import Event, RunStatus
from agentrt.store.protocols import Store
from agentrt.summaries import Summarize
from agentrt.testing.scripted import ScriptExhausted
from agentrt.tools.credentials import Credentials
from agentrt.tools.registry import ToolRegistry
from agentrt.tracing.shown import shown_events

__all__ = ["AgentRuntime", "replay_logs", "replay_run"]


class AgentRuntime(Protocol):
    """What replay reads of the runtime whose run it re-runs (agentrt.AgentRuntime)."""

    db: str
    store: Store
    tools: ToolRegistry
    model_name: str | None
    model_price: ModelPrice | None
    summarize: Summarize | None
    deps: RunDeps
    clock: Callable[[], float]
    redactor: Redactor

    @property
    def graph(self) -> Graph: ...

    @property
    def policy(self) -> Policy: ...

    @property
    def budget(self) -> Budget: ...

    def get(self, thread_id: str) -> Any: ...

    def events(self, thread_id: str) -> list[Event]: ...

    def messages(self, thread_id: str) -> list[Any]: ...


def replay_run(
    rt: AgentRuntime, thread_id: str, *, build: Callable[..., Any], policy: Policy | None = None
) -> ReplayReport:
    """Re-run ``thread_id`` from its recordings in a scratch database and compare.

    ``build`` makes the scratch runtime (AgentRuntime itself: replay is below it);
    ``policy``: decide the re-run's actions by this policy rather than the runtime's (a
    what-if for a policy not yet live)."""
    return replay_logs(rt, thread_id, build=build, policy=policy).report


def replay_logs(
    rt: AgentRuntime, thread_id: str, *, build: Callable[..., Any], policy: Policy | None = None
) -> Replayed:
    """``replay_run``, with the two event logs it compared."""
    record = rt.store.get_run(thread_id)
    run = rt.get(thread_id)
    assert record is not None
    calls = rt.store.model_calls(thread_id)
    original = rt.events(thread_id)
    if not calls:
        if any(e["type"] == "plan" for e in original):
            raise ConfigError(
                f"run {thread_id!r} has no recorded model calls in {rt.store.location!r}, so "
                "it cannot be replayed: it ran on a version of agentrt that did not record them"
            )
        ended = f"it is {run.status.value}" + (f": {run.error}" if run.error else "")
        raise ConfigError(
            f"run {thread_id!r} never got an answer from its model ({ended}), so there is "
            "nothing to replay"
        )
    recording = Recording(rt, thread_id, original)
    asked: dict[int, str] = {}
    budget = recording.initial_budget(Budget.from_dict(record.budget))
    with tempfile.TemporaryDirectory(prefix="agentrt-replay-") as scratch:
        replica = build(
            replay_model(calls, asked, rt),
            tools=[recording.stub(spec) for spec in rt.tools],
            policy=rt.policy if policy is None else policy,
            db=Path(scratch) / "replay.db",
            tracing=None,
            metrics=False,
            # The recorded answers write the summaries too, where the run summarized.
            summarize=None
            if rt.summarize is None
            else dataclasses.replace(rt.summarize, model=None),
            budget=rt.budget,
            prices={rt.model_name: rt.model_price} if rt.model_name and rt.model_price else None,
            instructions=rt.deps.instructions,
            clock=rt.clock,
            # A retry the run waited for is played back at once.
            sleep=lambda _: None,
            new_id=lambda: f"replay-{thread_id}",
            model_retry=RetryPolicy(max_attempts=1),
            # Nothing real is called: a tool's credentials are stand-ins, never the secrets.
            credentials=Credentials.from_callable(lambda name, _: f"agentrt-replay-{name}-0x5e"),
        )
        try:
            # Written first, driven once the replay's ledger holds what the run's held
            # before its steps (the calls that died with their process): create, then resume,
            # is start in two.
            made = replica.create(run.goal, principal=run.principal, budget=budget)
            recording.prime(replica.store, made.thread_id, rt.tools)
            with quiet():  # where the recordings end the replica fails, by design
                again = replica.resume(made.thread_id)
                # Each follow-up the thread took, in the order taken, sent as it was.
                taken = sorted(
                    (m for m in rt.messages(thread_id)[1:] if m.started_at is not None),
                    key=lambda m: (m.started_at, m.index),
                )
                for message in [None, *taken]:
                    if message is not None:
                        again = replica.send(
                            again.thread_id,
                            message.text,
                            principal=message.principal,
                            budget=message.budget,
                            double_texting="interrupt" if message.interrupt else "enqueue",
                        )
                    again = answer_gates(replica, again, recording, most=len(original) + 1)
            replayed = replica.events(again.thread_id)
        finally:
            replica.close()
    # Asked for an answer the run never got (its provider failed, or it waits to retry):
    # the replay ends there; whether the run ended there too is the comparison's to say.
    ran_out = again.status is RunStatus.FAILED and (again.error or "").startswith(
        ScriptExhausted.__name__
    )
    if ran_out and replayed and replayed[-1]["type"] == "finish":
        replayed = replayed[:-1]

    def said(log: list[Event], index: int) -> str:
        """The event at ``index`` of ``log`` in words, masked as every surface shows it."""
        return describe(shown_events(log, rt.redactor, rt.tools.sensitive_of, start=index)[0])

    report = compare(
        thread_id,
        original=original,
        replayed=replayed,
        asked=asked,
        calls=calls,
        misses=recording.misses,
        said=said,
        unanswered=run.status.value if ran_out else None,
    )
    # Identical only so far (the run was cancelled there, or the recordings end): what the
    # replay did past that point is vouched for by nothing, and not counted (the what-if).
    return Replayed(report, original, replayed[: report.events] if report.identical else replayed)
