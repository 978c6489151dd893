"""The run-analytics queries (agentrt.store.analytics.StatsStore), written once for both
SQL backends: one read a figure. Each backend's ``StatsTable`` names its dialect in a few
class attributes (how a parameter is marked, how a JSON field is read, how a day is
written, how text sorts).

The window's runs are found by the runs table's index on created_at, or on (tenant,
created_at); what a run owns is joined through an index of its own: approvals by the run's
id, spans by the run's trace id. What was spent and which budgets stopped are read a
message at a time (``_turns``): a thread that went on has its messages in the messages
table, found by when each started (messages_by_start); one that never did is its run row.

Rows come in the same order on both: text sorts byte-wise (``BYTES``) and a missing key
(no tenant, no limit) sorts first.
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

SPENT = ("input_tokens", "output_tokens", "cost_usd")
"""The fields of a usage document the spend figures sum."""


def _count(row: Any) -> Count:
    return Count(row["key"] or None, int(row["n"]))


class StatsSql:
    """StatsStore over a SQL database, in the dialect its subclass names."""

    MARK: ClassVar[str]
    """A query parameter's placeholder."""
    TRUE: ClassVar[str]
    """A condition that always holds."""
    DAY: ClassVar[str]
    """Epoch seconds (``{at}``) as their UTC day, YYYY-MM-DD."""
    USAGE_INT: ClassVar[str]
    """A field (``{key}``) of a usage document (``{doc}``) as an integer."""
    USAGE_REAL: ClassVar[str]
    """A field (``{key}``) of a usage document (``{doc}``) as a number with a fraction."""
    EACH_DENIAL: ClassVar[str]
    """After ``FROM runs r``: each (key, value) of the run's denials, as ``d``."""
    DENIAL_COUNT: ClassVar[str]
    """One denial entry's count."""
    BUDGET_LIMIT: ClassVar[str]
    """The limit that stopped a run, from a budget report (``{doc}``)."""
    BYTES: ClassVar[str]
    """The collation that sorts text byte-wise, as SQLite's default does."""

    db: Any
    """The backend's Database (its subclass says which): ``all(sql, params, record)``."""

    def _all(self, sql: str, params: list[Any], record: Callable[[Any], _T]) -> list[_T]:
        rows: list[_T] = self.db.all(sql, params, record)
        return rows

    def _window(self, query: StatsQuery, at: str = "r.created_at") -> tuple[str, list[Any]]:
        """The condition on ``runs r`` (and a time, ``at``) that picks the window."""
        sql, params = self.TRUE, list[Any]()
        if query.tenant is not None:
            sql += f" AND r.tenant = {self.MARK}"
            params.append(query.tenant)
        if query.since is not None:
            sql += f" AND {at} >= {self.MARK}"
            params.append(query.since)
        return sql, params

    def _spent(self, doc: str, before: str | None = None) -> list[str]:
        """The tokens and cost (``SPENT``) of usage ``doc``, less usage ``before``."""
        values = []
        for key in SPENT:
            kind = self.USAGE_REAL if key == "cost_usd" else self.USAGE_INT
            value = kind.format(doc=doc, key=key)
            if before is not None:
                value += f" - COALESCE({kind.format(doc=before, key=key)}, 0)"
            values.append(value)
        return values

    def _turns(self, query: StatsQuery) -> tuple[str, list[Any]]:
        """Each message of the window's threads that started in the window: ``tenant``,
        ``idx`` (0: the goal the run was created with), ``at`` (when it started),
        ``status`` (how it ended; the run's, for the thread's current one), what it spent
        (``SPENT``) and the limit that stopped it (``stop_limit``).

        A run that never went on is its one message, with the run's figures. The current
        message of one that did spent the run's usage less what the thread had spent when
        the message was taken, as ``rt.messages`` shows it; the messages before it keep
        what they spent.
        """
        alone, alone_params = self._window(query)
        went_on, went_on_params = self._window(query, "m.started_at")
        current = "m.idx = r.message"
        own = ", ".join(
            f"{value} AS {key}" for key, value in zip(SPENT, self._spent("r.usage"), strict=True)
        )
        each = ", ".join(
            f"CASE WHEN {current} THEN {mine} ELSE {kept} END"
            for mine, kept in zip(
                self._spent("r.usage", before="m.usage_before"),
                self._spent("m.usage"),
                strict=True,
            )
        )
        # A window in time is found by messages_by_start, however many runs its tenant
        # has: SQLite's planner, which knows no table's size, would go through them all
        # (a CROSS JOIN keeps its tables in the order written; PostgreSQL plans as ever).
        join = " CROSS JOIN" if query.since is not None else ","
        run_limit = self.BUDGET_LIMIT.format(doc="r.budget_report")
        kept_limit = self.BUDGET_LIMIT.format(doc="m.budget_report")
        sql = (
            f"SELECT r.tenant AS tenant, 0 AS idx, r.created_at AS at, r.status AS status, "
            f"{own}, {run_limit} AS stop_limit "
            f"FROM runs r WHERE r.message = 0 AND {alone} "
            "UNION ALL "
            "SELECT r.tenant, m.idx, m.started_at, "
            f"CASE WHEN {current} THEN r.status ELSE m.status END, {each}, "
            f"CASE WHEN {current} THEN {run_limit} ELSE {kept_limit} END "
            f"FROM messages m{join} runs r WHERE r.thread_id = m.thread_id "
            f"AND m.started_at IS NOT NULL AND {went_on}"
        )
        return sql, [*alone_params, *went_on_params]

    def run_counts(self, query: StatsQuery) -> list[Count]:
        where, params = self._window(query)
        return self._all(
            f"SELECT status AS key, COUNT(*) AS n FROM runs r WHERE {where} "
            f"GROUP BY status ORDER BY n DESC, status {self.BYTES}",
            params,
            _count,
        )

    def spend(self, query: StatsQuery) -> list[Spend]:
        turns, params = self._turns(query)
        return self._all(
            f"SELECT tenant, {self.DAY.format(at='at')} AS day, "
            "SUM(CASE WHEN idx = 0 THEN 1 ELSE 0 END) AS runs, "
            "SUM(input_tokens) AS input_tokens, SUM(output_tokens) AS output_tokens, "
            f"SUM(cost_usd) AS cost_usd FROM ({turns}) t "
            f"GROUP BY day, tenant ORDER BY day, tenant {self.BYTES} NULLS FIRST",
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
            f"AND r.denials IS NOT NULL GROUP BY d.key ORDER BY n DESC, d.key {self.BYTES}",
            params,
            _count,
        )

    def budget_stops(self, query: StatsQuery) -> list[Count]:
        turns, params = self._turns(query)
        return self._all(
            f"SELECT stop_limit {self.BYTES} AS key, COUNT(*) AS n FROM ({turns}) t "
            f"WHERE status = {self.MARK} GROUP BY key ORDER BY n DESC, key NULLS FIRST",
            [*params, RunStatus.BUDGET_EXCEEDED.value],
            _count,
        )

    def tool_timings(self, query: StatsQuery, *, limit: int = 10) -> list[ToolTiming]:
        where, params = self._window(query)
        return self._all(
            f"SELECT substr(s.name, {len(TOOL_SPAN) + 1}) {self.BYTES} AS tool, "
            "COUNT(*) AS calls, "
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
