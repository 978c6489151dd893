"""Run analytics on SQLite (agentrt.store.analytics.StatsStore): one read a figure.

The window's runs are found by runs_by_time (created_at) or runs_by_tenant_time (tenant,
created_at); what a run owns is joined through an index of its own: approvals by the
run's id, spans by the run's trace id.
"""

from __future__ import annotations

from typing import Any

from agentrt.state import RunStatus
from agentrt.store.analytics import ApprovalWait, Count, Spend, StatsQuery, ToolTiming
from agentrt.store.sqlite.database import Database

__all__ = ["StatsTable"]

TOOL_SPAN = "execute_tool "
"""How a tool.call span's name starts; the tool's name follows."""


def _window(query: StatsQuery, alias: str = "r") -> tuple[str, list[Any]]:
    sql, params = "1=1", list[Any]()
    if query.tenant is not None:
        sql += f" AND {alias}.tenant = ?"
        params.append(query.tenant)
    if query.since is not None:
        sql += f" AND {alias}.created_at >= ?"
        params.append(query.since)
    return sql, params


def _count(row: Any) -> Count:
    return Count(row["key"] or None, int(row["n"]))


class StatsTable:
    """StatsStore on SQLite."""

    db: Database

    def run_counts(self, query: StatsQuery) -> list[Count]:
        where, params = _window(query)
        return self.db.all(
            f"SELECT status AS key, COUNT(*) AS n FROM runs r WHERE {where} "
            "GROUP BY status ORDER BY n DESC, status",
            params,
            _count,
        )

    def spend(self, query: StatsQuery) -> list[Spend]:
        where, params = _window(query)
        return self.db.all(
            "SELECT tenant, date(created_at, 'unixepoch') AS day, COUNT(*) AS runs, "
            "SUM(json_extract(usage, '$.input_tokens')) AS input_tokens, "
            "SUM(json_extract(usage, '$.output_tokens')) AS output_tokens, "
            "SUM(json_extract(usage, '$.cost_usd')) AS cost_usd "
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
        where, params = _window(query)
        return self.db.all(
            "SELECT a.rule_id, a.required_role, a.decided_at - a.requested_at AS seconds "
            f"FROM runs r JOIN approvals a ON a.thread_id = r.thread_id WHERE {where} "
            "AND a.decided_by IS NOT NULL AND a.decided_at IS NOT NULL",
            params,
            lambda row: ApprovalWait(
                row["rule_id"], row["required_role"], max(0.0, float(row["seconds"]))
            ),
        )

    def denials(self, query: StatsQuery) -> list[Count]:
        where, params = _window(query)
        return self.db.all(
            "SELECT d.key AS key, SUM(d.value) AS n "
            f"FROM runs r, json_each(r.denials) d WHERE {where} AND r.denials IS NOT NULL "
            "GROUP BY d.key ORDER BY n DESC, d.key",
            params,
            _count,
        )

    def budget_stops(self, query: StatsQuery) -> list[Count]:
        where, params = _window(query)
        return self.db.all(
            "SELECT json_extract(budget_report, '$.limit') AS key, COUNT(*) AS n "
            f"FROM runs r WHERE {where} AND r.status = ? "
            "GROUP BY key ORDER BY n DESC, key",
            [*params, RunStatus.BUDGET_EXCEEDED.value],
            _count,
        )

    def tool_timings(self, query: StatsQuery, *, limit: int = 10) -> list[ToolTiming]:
        where, params = _window(query)
        return self.db.all(
            f"SELECT substr(s.name, {len(TOOL_SPAN) + 1}) AS tool, COUNT(*) AS calls, "
            "AVG(s.end_ns - s.start_ns) / 1e9 AS mean_seconds, "
            "MAX(s.end_ns - s.start_ns) / 1e9 AS max_seconds "
            f"FROM runs r JOIN spans s ON s.trace_id = r.trace_id WHERE {where} "
            "AND s.name LIKE ? AND s.end_ns IS NOT NULL "
            "GROUP BY tool ORDER BY mean_seconds DESC, tool LIMIT ?",
            [*params, TOOL_SPAN + "%", limit],
            lambda row: ToolTiming(
                row["tool"],
                int(row["calls"]),
                float(row["mean_seconds"]),
                float(row["max_seconds"]),
            ),
        )
