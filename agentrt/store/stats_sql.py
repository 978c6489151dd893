"""The run-analytics queries (agentrt.store.analytics.StatsStore), written once for both
SQL backends: one read a figure. Each backend's ``StatsTable`` names its dialect in a few
class attributes (how a parameter is marked, how a JSON field is read, how a day is
written).

The window's runs are found by the runs table's index on created_at, or on (tenant,
created_at); what a run owns is joined through an index of its own: approvals by the run's
id, spans by the run's trace id.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from agentrt.state import RunStatus
from agentrt.store.analytics import ApprovalWait, Count, Spend, StatsQuery, ToolTiming

__all__ = ["TOOL_SPAN", "StatsSql"]

_T = TypeVar("_T")

TOOL_SPAN = "execute_tool "
"""How a tool.call span's name starts; the tool's name follows."""


def _count(row: Any) -> Count:
    return Count(row["key"] or None, int(row["n"]))


class StatsSql:
    """StatsStore over a SQL database, in the dialect its subclass names."""

    MARK: ClassVar[str]
    """A query parameter's placeholder."""
    TRUE: ClassVar[str]
    """A condition that always holds."""
    DAY: ClassVar[str]
    """A run's created_at as its UTC day, YYYY-MM-DD."""
    USAGE_INT: ClassVar[str]
    """A field of a run's usage (``{key}``) as an integer."""
    USAGE_REAL: ClassVar[str]
    """A field of a run's usage (``{key}``) as a number with a fraction."""
    EACH_DENIAL: ClassVar[str]
    """After ``FROM runs r``: each (key, value) of the run's denials, as ``d``."""
    DENIAL_COUNT: ClassVar[str]
    """One denial entry's count."""
    BUDGET_LIMIT: ClassVar[str]
    """The limit that stopped a run, from its budget report."""

    db: Any
    """The backend's Database (its subclass says which): ``all(sql, params, record)``."""

    def _all(self, sql: str, params: list[Any], record: Callable[[Any], _T]) -> list[_T]:
        rows: list[_T] = self.db.all(sql, params, record)
        return rows

    def _window(self, query: StatsQuery) -> tuple[str, list[Any]]:
        sql, params = self.TRUE, list[Any]()
        if query.tenant is not None:
            sql += f" AND r.tenant = {self.MARK}"
            params.append(query.tenant)
        if query.since is not None:
            sql += f" AND r.created_at >= {self.MARK}"
            params.append(query.since)
        return sql, params

    def run_counts(self, query: StatsQuery) -> list[Count]:
        where, params = self._window(query)
        return self._all(
            f"SELECT status AS key, COUNT(*) AS n FROM runs r WHERE {where} "
            "GROUP BY status ORDER BY n DESC, status",
            params,
            _count,
        )

    def spend(self, query: StatsQuery) -> list[Spend]:
        where, params = self._window(query)
        return self._all(
            f"SELECT tenant, {self.DAY} AS day, COUNT(*) AS runs, "
            f"SUM({self.USAGE_INT.format(key='input_tokens')}) AS input_tokens, "
            f"SUM({self.USAGE_INT.format(key='output_tokens')}) AS output_tokens, "
            f"SUM({self.USAGE_REAL.format(key='cost_usd')}) AS cost_usd "
            f"FROM runs r WHERE {where} GROUP BY day, tenant ORDER BY day, tenant",
            params,
            lambda row: Spend(
                row["tenant"],
                row["day"],
                int(row["runs"]),
                int(row["input_tokens"] or 0),
                int(row["output_tokens"] or 0),
                float(row["cost_usd"] or 0.0),
            ),
        )

    def approval_waits(self, query: StatsQuery) -> list[ApprovalWait]:
        where, params = self._window(query)
        return self._all(
            "SELECT a.rule_id, a.required_role, a.decided_at - a.requested_at AS seconds "
            f"FROM runs r JOIN approvals a ON a.thread_id = r.thread_id WHERE {where} "
            "AND a.decided_by IS NOT NULL AND a.decided_at IS NOT NULL",
            params,
            lambda row: ApprovalWait(
                row["rule_id"], row["required_role"], max(0.0, float(row["seconds"]))
            ),
        )

    def denials(self, query: StatsQuery) -> list[Count]:
        where, params = self._window(query)
        return self._all(
            f"SELECT d.key AS key, SUM({self.DENIAL_COUNT}) AS n "
            f"FROM runs r {self.EACH_DENIAL} WHERE {where} "
            "AND r.denials IS NOT NULL GROUP BY d.key ORDER BY n DESC, d.key",
            params,
            _count,
        )

    def budget_stops(self, query: StatsQuery) -> list[Count]:
        where, params = self._window(query)
        return self._all(
            f"SELECT {self.BUDGET_LIMIT} AS key, COUNT(*) AS n "
            f"FROM runs r WHERE {where} AND r.status = {self.MARK} "
            "GROUP BY key ORDER BY n DESC, key",
            [*params, RunStatus.BUDGET_EXCEEDED.value],
            _count,
        )

    def tool_timings(self, query: StatsQuery, *, limit: int = 10) -> list[ToolTiming]:
        where, params = self._window(query)
        return self._all(
            f"SELECT substr(s.name, {len(TOOL_SPAN) + 1}) AS tool, COUNT(*) AS calls, "
            "AVG(s.end_ns - s.start_ns) / 1e9 AS mean_seconds, "
            "MAX(s.end_ns - s.start_ns) / 1e9 AS max_seconds "
            f"FROM runs r JOIN spans s ON s.trace_id = r.trace_id WHERE {where} "
            f"AND s.name LIKE {self.MARK} AND s.end_ns IS NOT NULL "
            f"GROUP BY tool ORDER BY mean_seconds DESC, tool LIMIT {self.MARK}",
            [*params, TOOL_SPAN + "%", limit],
            lambda row: ToolTiming(
                row["tool"],
                int(row["calls"]),
                float(row["mean_seconds"]),
                float(row["max_seconds"]),
            ),
        )
