"""What a store answers about many runs at once, for `agentrt stats` and the stats page.

Each query is one indexed read over the runs of a window (created at or after ``since``,
of one tenant or all): the runs table by (created_at) or (tenant, created_at), and the
tables a run owns through their run's id. Spend and budget stops are a message's: a
thread that goes on spends on the day each message is taken, and a stop stays counted
once the thread went on; they are read from the messages table by when each message
started (a run that never went on is its one message). The store sums and counts; what
the figures mean (percentiles, the report people read) is worked out above it, in
agentrt.runs.stats.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = [
    "ApprovalWait",
    "Count",
    "Spend",
    "StatsQuery",
    "StatsStore",
    "ToolTiming",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class StatsQuery:
    """Which runs the figures are about."""

    since: float | None = None
    """Runs created at or after this epoch second, and what the messages taken from then
    on spent; None: every run."""
    tenant: str | None = None
    """Runs of this tenant only; None: every tenant."""


@dataclass(frozen=True, slots=True)
class Count:
    """How many of something, by one key (a status, a rule, a budget limit)."""

    key: str | None
    count: int


@dataclass(frozen=True, slots=True)
class Spend:
    """What one tenant's runs spent on one day (UTC): each message's spending falls on
    the day it was taken, a thread's first (its goal) on the day the run was created."""

    tenant: str | None
    day: str
    """YYYY-MM-DD, in UTC."""
    runs: int
    """Runs created that day (a day of follow-ups alone has none)."""
    input_tokens: int
    output_tokens: int
    cost_usd: float


@dataclass(frozen=True, slots=True)
class ApprovalWait:
    """How long one request decided by a person waited for its decision."""

    rule_id: str | None
    required_role: str | None
    seconds: float


@dataclass(frozen=True, slots=True)
class ToolTiming:
    """One tool's calls in the span store: how many, and how long they took."""

    tool: str
    calls: int
    mean_seconds: float
    max_seconds: float


@runtime_checkable
class StatsStore(Protocol):
    """The queries behind run analytics (SQLite and PostgreSQL)."""

    def run_counts(self, query: StatsQuery) -> list[Count]:
        """Runs by status."""
        ...

    def spend(self, query: StatsQuery) -> list[Spend]:
        """Runs created, tokens and cost spent, by tenant and UTC day, by day then tenant
        (no tenant first)."""
        ...

    def approval_waits(self, query: StatsQuery) -> list[ApprovalWait]:
        """Every request of the window's runs that a person decided, with its wait."""
        ...

    def denials(self, query: StatsQuery) -> list[Count]:
        """Policy denials by rule id (None: the policy's default), most first."""
        ...

    def budget_stops(self, query: StatsQuery) -> list[Count]:
        """Messages a budget stopped (a run's goal is its first), by the limit that
        tripped, most first; still counted once the thread went on."""
        ...

    def tool_timings(self, query: StatsQuery, *, limit: int = 10) -> list[ToolTiming]:
        """The tools slowest on average, from the span store's tool.call spans."""
        ...
