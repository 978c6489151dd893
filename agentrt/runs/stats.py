"""Run analytics: what the runs of a window did, spent and waited, from the store.

The store counts and sums (agentrt.store.analytics, one indexed read a figure); here the
figures become the report `agentrt stats`, ``rt.stats()`` and the review app's stats page
show: waits as percentiles, money and time as people read them.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from agentrt.errors import ConfigError
from agentrt.state import Event
from agentrt.store.analytics import Count, Spend, StatsQuery, StatsStore, ToolTiming

__all__ = [
    "DEFAULT_RULE",
    "RunStats",
    "WaitStats",
    "compute_stats",
    "denials_of",
    "percentile",
    "since_for",
]

DEFAULT_RULE = ""
"""The key a denial by the policy's default (no rule matched) is counted under."""


def denials_of(events: Iterable[Event]) -> dict[str, int]:
    """A run's policy denials by rule id, from its event log."""
    counts: dict[str, int] = defaultdict(int)
    for event in events:
        if event["type"] == "policy" and event["data"].get("outcome") == "deny":
            counts[event["data"].get("rule_id") or DEFAULT_RULE] += 1
    return dict(counts)


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of sorted ``values`` (0 for none): the smallest value
    at least ``fraction`` of them are not above."""
    if not values:
        return 0.0
    rank = max(1, math.ceil(fraction * len(values)))
    return values[min(rank, len(values)) - 1]


@dataclass(frozen=True, slots=True)
class WaitStats:
    """How long the requests of one rule and role waited for a person."""

    rule_id: str | None
    required_role: str | None
    decided: int
    p50_seconds: float
    p95_seconds: float
    max_seconds: float


@dataclass(frozen=True, slots=True)
class RunStats:
    """What the runs of a window did: the figures of `agentrt stats`."""

    since: float | None
    """Runs created at or after this epoch second, and what was spent from then on (None:
    every run)."""
    tenant: str | None
    """Of this tenant only (None: every tenant)."""
    runs_by_status: dict[str, int]
    spend: list[Spend]
    """Runs created, tokens and cost spent, by UTC day and tenant: a follow-up's spending
    on the day it was taken."""
    approval_waits: list[WaitStats]
    """By rule and role, the longest p95 first."""
    denials: list[Count]
    """Policy denials by rule id (None: the policy's default), most first."""
    budget_stops: list[Count]
    """Messages a budget stopped (a run's goal is its first), by the limit that tripped;
    a stop stays counted once the thread went on."""
    slowest_tools: list[ToolTiming]
    """From the span store (tracing="sqlite"): empty when spans go elsewhere."""

    @property
    def runs(self) -> int:
        return sum(self.runs_by_status.values())

    @property
    def cost_usd(self) -> float:
        return sum(s.cost_usd for s in self.spend)

    @property
    def tokens(self) -> int:
        return sum(s.input_tokens + s.output_tokens for s in self.spend)

    def by_tenant(self) -> list[Spend]:
        """The spend summed over days, one row a tenant, the costliest first."""
        totals: dict[str | None, list[float]] = {}
        for s in self.spend:
            row = totals.setdefault(s.tenant, [0, 0, 0, 0.0])
            row[0] += s.runs
            row[1] += s.input_tokens
            row[2] += s.output_tokens
            row[3] += s.cost_usd
        rows = [
            Spend(tenant, "", int(r[0]), int(r[1]), int(r[2]), r[3]) for tenant, r in totals.items()
        ]
        return sorted(rows, key=lambda s: (-s.cost_usd, s.tenant or ""))

    def by_day(self) -> list[Spend]:
        """The spend summed over tenants, one row a day, oldest first."""
        totals: dict[str, list[float]] = {}
        for s in self.spend:
            row = totals.setdefault(s.day, [0, 0, 0, 0.0])
            row[0] += s.runs
            row[1] += s.input_tokens
            row[2] += s.output_tokens
            row[3] += s.cost_usd
        return [
            Spend(None, day, int(r[0]), int(r[1]), int(r[2]), r[3])
            for day, r in sorted(totals.items())
        ]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (what `agentrt stats --json` prints)."""
        return {
            "since": self.since,
            "tenant": self.tenant,
            "runs": self.runs,
            "runs_by_status": self.runs_by_status,
            "cost_usd": self.cost_usd,
            "tokens": self.tokens,
            "by_tenant": [_spend(s, day=False) for s in self.by_tenant()],
            "by_day": [_spend(s, tenant=False) for s in self.by_day()],
            "spend": [_spend(s) for s in self.spend],
            "approval_waits": [asdict(w) for w in self.approval_waits],
            "denials": [{"rule_id": c.key, "count": c.count} for c in self.denials],
            "budget_stops": [{"limit": c.key, "count": c.count} for c in self.budget_stops],
            "slowest_tools": [asdict(t) for t in self.slowest_tools],
        }


def _spend(s: Spend, *, day: bool = True, tenant: bool = True) -> dict[str, Any]:
    row = asdict(s)
    if not day:
        del row["day"]
    if not tenant:
        del row["tenant"]
    return row


def compute_stats(
    store: Any, *, since: float | None = None, tenant: str | None = None, tools: int = 10
) -> RunStats:
    """The figures of the runs created at or after ``since`` (epoch seconds; None: all),
    of ``tenant`` (None: every tenant), with the ``tools`` slowest tools; their spend and
    budget stops those of the messages taken from ``since`` on."""
    if not isinstance(store, StatsStore):
        raise ConfigError(
            f"the store {type(store).__name__!r} keeps no run analytics; open a SQLite file "
            "or a postgresql:// database"
        )
    if tenant is not None and (not isinstance(tenant, str) or not tenant):
        raise ConfigError(f"tenant must be a tenant's name or None, got {tenant!r}")
    if since is not None and (not isinstance(since, int | float) or not math.isfinite(since)):
        raise ConfigError(f"since must be epoch seconds or None, got {since!r}")
    query = StatsQuery(since=since, tenant=tenant)
    return RunStats(
        since=since,
        tenant=tenant,
        runs_by_status={c.key or "": c.count for c in store.run_counts(query)},
        spend=store.spend(query),
        approval_waits=_waits(store, query),
        denials=store.denials(query),
        budget_stops=store.budget_stops(query),
        slowest_tools=store.tool_timings(query, limit=tools),
    )


def _waits(store: StatsStore, query: StatsQuery) -> list[WaitStats]:
    groups: dict[tuple[str | None, str | None], list[float]] = defaultdict(list)
    for wait in store.approval_waits(query):
        groups[(wait.rule_id, wait.required_role)].append(wait.seconds)
    rows = []
    for (rule, role), seconds in groups.items():
        seconds.sort()
        rows.append(
            WaitStats(
                rule_id=rule,
                required_role=role,
                decided=len(seconds),
                p50_seconds=percentile(seconds, 0.50),
                p95_seconds=percentile(seconds, 0.95),
                max_seconds=seconds[-1],
            )
        )
    return sorted(rows, key=lambda w: (-w.p95_seconds, w.rule_id or "", w.required_role or ""))


def since_for(now: float, seconds: float | None) -> float | None:
    """The start of a window ``seconds`` long that ends ``now`` (None: no start)."""
    if seconds is None:
        return None
    if seconds <= 0:
        raise ConfigError(f"a window is a positive number of seconds, got {seconds!r}")
    return now - seconds
