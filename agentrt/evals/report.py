"""An eval's report: every run's verdict, per case and in aggregate, and what regressed.

The report is plain data: ``to_dict`` is what ``--json`` prints and ``--save-baseline``
writes; ``EvalReport.from_dict`` reads a saved one back, and ``regressions(baseline, now)``
says which cases and scorers got worse.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentrt.errors import ConfigError
from agentrt.evals.scorers import Score

__all__ = [
    "CaseSummary",
    "EvalReport",
    "RunResult",
    "ScorerSummary",
    "percentile",
    "regressions",
]

REPORT_VERSION = 1


@dataclass(frozen=True, kw_only=True, slots=True)
class RunResult:
    """One run of one case."""

    case: str
    repeat: int
    """Which of the case's runs, from 1."""
    thread_id: str
    """The run in the app's store: `agentrt show` and `agentrt trace` take it."""
    status: str
    scores: tuple[Score, ...]
    cost_usd: float = 0.0
    tokens: int = 0
    steps: int = 0
    tool_calls: int = 0
    latency_seconds: float = 0.0
    error: str | None = None
    """Why the run could not be made or finished (the case fails)."""
    cancelled: bool = False
    """The run was left waiting once scored (``status`` says at what: a gate, a retry),
    and the eval cancelled it, its requests with it: a test case leaves no request a
    reviewer could approve into a real effect."""

    @property
    def passed(self) -> bool:
        return self.error is None and all(s.passed for s in self.scores)

    @property
    def failures(self) -> list[Score]:
        return [s for s in self.scores if not s.passed]

    def to_dict(self) -> dict[str, Any]:
        return {
            "case": self.case,
            "repeat": self.repeat,
            "thread_id": self.thread_id,
            "status": self.status,
            "passed": self.passed,
            "cost_usd": self.cost_usd,
            "tokens": self.tokens,
            "steps": self.steps,
            "tool_calls": self.tool_calls,
            "latency_seconds": self.latency_seconds,
            "error": self.error,
            "cancelled": self.cancelled,
            "scores": [s.to_dict() for s in self.scores],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunResult:
        return cls(
            case=data["case"],
            repeat=data["repeat"],
            thread_id=data["thread_id"],
            status=data["status"],
            scores=tuple(Score.from_dict(s) for s in data["scores"]),
            cost_usd=data["cost_usd"],
            tokens=data["tokens"],
            steps=data["steps"],
            tool_calls=data["tool_calls"],
            latency_seconds=data["latency_seconds"],
            error=data.get("error"),
            cancelled=data.get("cancelled", False),
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class CaseSummary:
    """A case over its repeats."""

    name: str
    runs: int
    passed: int
    cost_usd: float
    """Mean per run."""
    tokens: float
    """Mean per run."""
    latency_p50: float
    latency_p95: float
    failed_scorers: tuple[str, ...]
    """Scorers that failed in any run (and "error" for a run that could not finish)."""
    thread_ids: tuple[str, ...]

    @property
    def pass_rate(self) -> float:
        return self.passed / self.runs if self.runs else 0.0


@dataclass(frozen=True, kw_only=True, slots=True)
class ScorerSummary:
    """One scorer over every run that used it."""

    name: str
    runs: int
    passed: int
    mean_value: float | None
    """The mean score, for scorers that give one."""


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) with linear interpolation between ranks; 0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True, kw_only=True, slots=True)
class EvalReport:
    """Every run of an eval, in dataset order."""

    dataset: str
    eval_id: str
    """Part of every run's thread id: eval-<eval_id>-..."""
    runs: tuple[RunResult, ...]
    repeat: int = 1

    @property
    def passed(self) -> int:
        return sum(r.passed for r in self.runs)

    @property
    def pass_rate(self) -> float:
        return self.passed / len(self.runs) if self.runs else 0.0

    @property
    def cost_usd(self) -> float:
        return sum(r.cost_usd for r in self.runs)

    @property
    def tokens(self) -> int:
        return sum(r.tokens for r in self.runs)

    def latency(self, q: float) -> float:
        return percentile([r.latency_seconds for r in self.runs], q)

    def cases(self) -> list[CaseSummary]:
        by_case: dict[str, list[RunResult]] = {}
        for run in self.runs:
            by_case.setdefault(run.case, []).append(run)
        summaries = []
        for name, runs in by_case.items():
            failed: list[str] = []
            for run in runs:
                names = [s.name for s in run.failures] + (["error"] if run.error else [])
                failed += [n for n in names if n not in failed]
            latencies = [r.latency_seconds for r in runs]
            summaries.append(
                CaseSummary(
                    name=name,
                    runs=len(runs),
                    passed=sum(r.passed for r in runs),
                    cost_usd=sum(r.cost_usd for r in runs) / len(runs),
                    tokens=sum(r.tokens for r in runs) / len(runs),
                    latency_p50=percentile(latencies, 50),
                    latency_p95=percentile(latencies, 95),
                    failed_scorers=tuple(failed),
                    thread_ids=tuple(r.thread_id for r in runs),
                )
            )
        return summaries

    def scorers(self) -> list[ScorerSummary]:
        by_name: dict[str, list[Score]] = {}
        for run in self.runs:
            for score in run.scores:
                by_name.setdefault(score.name, []).append(score)
        summaries = []
        for name, scores in by_name.items():
            values = [s.value for s in scores if s.value is not None]
            summaries.append(
                ScorerSummary(
                    name=name,
                    runs=len(scores),
                    passed=sum(s.passed for s in scores),
                    mean_value=sum(values) / len(values) if values else None,
                )
            )
        return summaries

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": REPORT_VERSION,
            "dataset": self.dataset,
            "eval_id": self.eval_id,
            "repeat": self.repeat,
            "aggregate": {
                "runs": len(self.runs),
                "passed": self.passed,
                "pass_rate": self.pass_rate,
                "cost_usd": self.cost_usd,
                "tokens": self.tokens,
                "latency_p50": self.latency(50),
                "latency_p95": self.latency(95),
            },
            "cases": [
                {
                    "name": c.name,
                    "runs": c.runs,
                    "passed": c.passed,
                    "pass_rate": c.pass_rate,
                    "cost_usd": c.cost_usd,
                    "tokens": c.tokens,
                    "latency_p50": c.latency_p50,
                    "latency_p95": c.latency_p95,
                    "failed_scorers": list(c.failed_scorers),
                    "thread_ids": list(c.thread_ids),
                }
                for c in self.cases()
            ],
            "scorers": [
                {"name": s.name, "runs": s.runs, "passed": s.passed, "mean_value": s.mean_value}
                for s in self.scorers()
            ],
            "runs": [r.to_dict() for r in self.runs],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvalReport:
        return cls(
            dataset=data["dataset"],
            eval_id=data["eval_id"],
            repeat=data.get("repeat", 1),
            runs=tuple(RunResult.from_dict(r) for r in data["runs"]),
        )

    @classmethod
    def load(cls, path: str | Path) -> EvalReport:
        """A report saved with ``--save-baseline`` (or printed by ``--json``)."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read baseline {str(path)!r}: {exc.strerror}") from None
        except ValueError as exc:
            raise ConfigError(f"baseline {str(path)!r} is not JSON: {exc}") from None
        if not isinstance(data, dict) or data.get("version") != REPORT_VERSION:
            raise ConfigError(
                f"baseline {str(path)!r} is not an eval report of version {REPORT_VERSION}; "
                "save one with agentrt eval --save-baseline FILE"
            )
        try:
            return cls.from_dict(data)
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"baseline {str(path)!r} lacks the field {exc}") from None

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")


def regressions(baseline: EvalReport, now: EvalReport) -> list[str]:
    """What got worse since ``baseline``, in words: a case whose pass rate fell, with the
    scorers that fail now and passed then. Cases new since the baseline, or gone from it,
    are not regressions."""
    before = {c.name: c for c in baseline.cases()}
    before_scores = _scorer_rates(baseline)
    now_scores = _scorer_rates(now)
    found = []
    for case in now.cases():
        then = before.get(case.name)
        if then is None or case.pass_rate >= then.pass_rate:
            continue
        worse = [
            name
            for (c, name), rate in now_scores.items()
            if c == case.name and rate < before_scores.get((c, name), 0.0)
        ]
        because = f" ({', '.join(worse)} now fail)" if worse else ""
        found.append(
            f"case {case.name!r} passed {then.passed}/{then.runs} in the baseline, "
            f"{case.passed}/{case.runs} now{because}"
        )
    return found


def _scorer_rates(report: EvalReport) -> dict[tuple[str, str], float]:
    tally: dict[tuple[str, str], list[bool]] = {}
    for run in report.runs:
        for score in run.scores:
            tally.setdefault((run.case, score.name), []).append(score.passed)
        # A run that could not finish fails as a whole: "the run" regressed.
        tally.setdefault((run.case, "the run"), []).append(run.error is None)
    return {key: sum(v) / len(v) for key, v in tally.items()}
