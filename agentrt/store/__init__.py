"""Persistence: SQLite now; Postgres joins when a team outgrows one machine."""

from agentrt.store.sqlite import EffectRecord, LeaseOwner, RunRecord, Store, connect

__all__ = ["EffectRecord", "LeaseOwner", "RunRecord", "Store", "connect"]
