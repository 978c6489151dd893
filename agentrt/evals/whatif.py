"""What-if over recorded runs: replay them under today's code, or a candidate policy, and
count what the policy would have decided.

Each run is replayed (agentrt.replay: its recorded model answers, its recorded tool
results, a scratch database) and compared with what happened. The verdicts counted for
"now" are those the replay reached while it still followed the recordings: up to and
including the first divergence. Past it the run would have gone another way, and its
recordings no longer say how (a person would first have had to approve, the model would
have been told of a denial). So the count says "would have required approval on 14 of
the last 200 runs and denied 2" about the first place each run would have changed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from agentrt.errors import AgentRuntimeError
from agentrt.policies import Policy
from agentrt.replay import replay_logs
from agentrt.runtime import AgentRuntime
from agentrt.state import Event, RunStatus
from agentrt.tracing.shown import shown

__all__ = ["RunWhatIf", "WhatIfReport", "recent_runs", "what_if"]


@dataclass(frozen=True, kw_only=True, slots=True)
class RunWhatIf:
    """One recorded run replayed."""

    thread_id: str
    status: str
    """The run's recorded status."""
    identical: bool | None
    """None: the run could not be replayed (see ``error``)."""
    divergence: str | None = None
    """The first difference, in words."""
    step_id: str | None = None
    was: frozenset[str] = frozenset()
    """Policy outcomes the run got (allow, require_approval, deny)."""
    now: frozenset[str] = frozenset()
    """Policy outcomes the replay reached, up to its first divergence."""
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "thread_id": self.thread_id,
            "status": self.status,
            "identical": self.identical,
            "divergence": self.divergence,
            "step_id": self.step_id,
            "was": sorted(self.was),
            "now": sorted(self.now),
            "error": self.error,
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class WhatIfReport:
    """Every replayed run and the counts over them."""

    policy: str
    """The policy the replays decided by, as name@version."""
    candidate: bool
    """True when that policy is not the app's own (--policy)."""
    runs: tuple[RunWhatIf, ...]

    def _count(self, outcome: str, field: str) -> int:
        return sum(1 for r in self.runs if r.identical is not None and outcome in getattr(r, field))

    @property
    def replayed(self) -> int:
        return sum(r.identical is not None for r in self.runs)

    @property
    def identical(self) -> int:
        return sum(r.identical is True for r in self.runs)

    @property
    def diverged(self) -> list[RunWhatIf]:
        return [r for r in self.runs if r.identical is False]

    @property
    def not_replayed(self) -> list[RunWhatIf]:
        return [r for r in self.runs if r.identical is None]

    def counts(self) -> dict[str, int]:
        """Runs that would require approval / be denied now, and as recorded."""
        return {
            "approval_now": self._count("require_approval", "now"),
            "denied_now": self._count("deny", "now"),
            "approval_was": self._count("require_approval", "was"),
            "denied_was": self._count("deny", "was"),
        }

    def summary(self) -> str:
        """The finding in one sentence."""
        c = self.counts()
        which = "this policy" if self.candidate else "today's code and policy"
        return (
            f"{which} would have required approval on {c['approval_now']} of the last "
            f"{self.replayed} runs and denied {c['denied_now']} (as recorded: "
            f"{c['approval_was']} and {c['denied_was']}); {len(self.diverged)} diverge, "
            f"{self.identical} replay identical"
            + (f", {len(self.not_replayed)} could not be replayed" if self.not_replayed else "")
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "candidate": self.candidate,
            "replayed": self.replayed,
            "identical": self.identical,
            "diverged": len(self.diverged),
            "not_replayed": len(self.not_replayed),
            **self.counts(),
            "summary": self.summary(),
            "runs": [r.to_dict() for r in self.runs],
        }


def recent_runs(
    rt: AgentRuntime,
    *,
    last: int,
    statuses: Sequence[RunStatus | str] = (),
    tenant: str | None = None,
) -> list[str]:
    """Thread ids of the ``last`` runs, newest first, of these statuses (any if none)."""
    if not statuses:
        return [r.thread_id for r in rt.runs(tenant=tenant, limit=last)]
    found = [r for s in statuses for r in rt.runs(s, tenant=tenant, limit=last)]
    found.sort(key=lambda r: r.created_at, reverse=True)
    return [r.thread_id for r in found[:last]]


def what_if(
    rt: AgentRuntime,
    thread_ids: Iterable[str],
    *,
    policy: Policy | None = None,
    on_run: Callable[[RunWhatIf], None] | None = None,
) -> WhatIfReport:
    """Replay each run under today's code and ``policy`` (None: the app's) and count."""
    if policy is not None:
        policy.check_tools(rt.tools.names())
    decider = policy or rt.policy
    runs = []
    for thread_id in thread_ids:
        one = _replayed(rt, thread_id, policy)
        runs.append(one)
        if on_run is not None:
            on_run(one)
    return WhatIfReport(
        policy=f"{decider.name}@{decider.version}",
        candidate=policy is not None,
        runs=tuple(runs),
    )


def _replayed(rt: AgentRuntime, thread_id: str, policy: Policy | None) -> RunWhatIf:
    status = rt.get(thread_id).status.value
    try:
        logs = replay_logs(rt, thread_id, build=AgentRuntime, policy=policy)
    except AgentRuntimeError as exc:  # e.g. a run that never got a model answer
        return RunWhatIf(
            thread_id=thread_id, status=status, identical=None, error=shown(str(exc), rt.redactor)
        )
    report = logs.report
    # Up to and including the first divergence: as far as the recordings vouch.
    reached = logs.replayed if report.identical else logs.replayed[: report.events + 1]
    return RunWhatIf(
        thread_id=thread_id,
        status=status,
        identical=report.identical,
        divergence=shown(report.divergence, rt.redactor),
        step_id=report.step_id,
        was=_outcomes(logs.original),
        now=_outcomes(reached),
    )


def _outcomes(events: Sequence[Event]) -> frozenset[str]:
    return frozenset(e["data"]["outcome"] for e in events if e["type"] == "policy")
