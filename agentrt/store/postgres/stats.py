"""Run analytics on PostgreSQL: the queries of agentrt.store.stats_sql in its dialect."""

from __future__ import annotations

from agentrt.store.postgres.database import Database
from agentrt.store.stats_sql import StatsSql

__all__ = ["StatsTable"]


class StatsTable(StatsSql):
    """StatsStore on PostgreSQL."""

    MARK = "%s"
    TRUE = "TRUE"
    DAY = "to_char(to_timestamp({at}) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
    USAGE_INT = "({doc}->>'{key}')::bigint"
    USAGE_REAL = "({doc}->>'{key}')::double precision"
    EACH_DENIAL = "CROSS JOIN LATERAL json_each_text(r.denials) d"
    DENIAL_COUNT = "d.value::bigint"
    BUDGET_LIMIT = "{doc}->>'limit'"
    BYTES = 'COLLATE "C"'

    db: Database
