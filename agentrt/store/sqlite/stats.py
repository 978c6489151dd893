"""Run analytics on SQLite: the queries of agentrt.store.stats_sql in SQLite's dialect."""

from __future__ import annotations

from agentrt.store.sqlite.database import Database
from agentrt.store.stats_sql import StatsSql

__all__ = ["StatsTable"]


class StatsTable(StatsSql):
    """StatsStore on SQLite."""

    MARK = "?"
    TRUE = "1=1"
    DAY = "date({at}, 'unixepoch')"
    USAGE_INT = "json_extract({doc}, '$.{key}')"
    USAGE_REAL = "json_extract({doc}, '$.{key}')"
    EACH_DENIAL = ", json_each(r.denials) d"
    DENIAL_COUNT = "d.value"
    BUDGET_LIMIT = "json_extract({doc}, '$.limit')"
    BYTES = "COLLATE BINARY"

    db: Database
