"""Persistence behind one set of protocols (agentrt.store.protocols): SQLite or PostgreSQL.

The records the store keeps are agentrt.records; the protocols, one per table family, are
agentrt.store.protocols.

``open_store(url)`` gives the store and its LangGraph checkpointer for a path or URL:
``agentrt.db``, ``sqlite:///path/to/file.db``, or ``postgresql://user:password@host/db``
(the ``postgres`` extra). Nothing outside this package touches a database connection.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.store.base import BaseStore

from agentrt.errors import ConfigError
from agentrt.store.protocols import Store
from agentrt.urls import hidden_password

if TYPE_CHECKING:
    from agentrt.store.postgres.database import PoolSettings

__all__ = ["OpenedStore", "Store", "is_postgres", "open_store", "sqlite_path"]

POSTGRES_SCHEMES = ("postgresql://", "postgres://")


@dataclass(frozen=True, slots=True)
class OpenedStore:
    """A store, the LangGraph checkpointer and LangGraph's long-term store (the runs'
    memory across threads) on the same database."""

    store: Store
    checkpointer: BaseCheckpointSaver[Any]
    memories: BaseStore | None = None

    def close(self) -> None:
        """Close the checkpointer's and the memories' connections, then the store's."""
        for part in (self.checkpointer, self.memories):
            close = getattr(part, "close", None)
            if close is not None:
                close()
        self.store.close()


def sqlite_path(url: str | Path) -> str:
    """The file a SQLite path or URL names. As in SQLAlchemy, what follows
    ``sqlite:///`` is the path: ``sqlite:///agentrt.db`` is relative,
    ``sqlite:////var/lib/agentrt.db`` absolute. ConfigError for any other scheme, and for
    an empty path (SQLite would open a private scratch database on each connection, which
    keeps nothing). Each message shows a URL with its password hidden."""
    text = str(url)
    if text.startswith("sqlite:"):
        path = text[len("sqlite:///") :] if text.startswith("sqlite:///") else ""
        if not path.strip():
            raise ConfigError(
                f"database URL {hidden_password(text)!r} names no file; write "
                "sqlite:///relative/file.db or sqlite:////absolute/file.db"
            )
        return path
    if "://" in text:
        scheme = text.split("://", 1)[0]
        raise ConfigError(
            f"database URL {hidden_password(text)!r} has scheme {scheme!r}, which this agentrt "
            "cannot open; give a SQLite file path (agentrt.db), sqlite:///path/to/file.db or "
            "postgresql://user:password@host/database"
        )
    if not text.strip():
        # An unset setting read as "": every run would fail on tables its connection lacks.
        raise ConfigError(
            f"db {text!r} names no database; give a SQLite file path (agentrt.db) or a "
            "postgresql:// URL"
        )
    if text.strip() == ":memory:" or (text.startswith("file:") and "memory" in text):
        # Each of the runtime's connections (runs, spans, checkpoints) would open a database
        # of its own: its runs would fail on tables the others made, and nothing be kept.
        raise ConfigError(
            f"db {text!r} is a database each connection has to itself, which a runtime "
            "cannot share between its parts; give a SQLite file (a temporary one, "
            "tempfile.mkdtemp() + '/agentrt.db', for a scratch runtime) or a postgresql:// URL"
        )
    return text


def is_postgres(url: str | Path) -> bool:
    """True for a ``postgresql://`` (or ``postgres://``) URL."""
    return str(url).startswith(POSTGRES_SCHEMES)


def open_store(
    url: str | Path,
    *,
    clock: Callable[[], float] = time.time,
    pool: PoolSettings | None = None,
) -> OpenedStore:
    """The store and checkpointer for ``url``, migrated to this agentrt's schema: a SQLite
    path or ``sqlite:///`` URL, or a ``postgresql://`` URL (its query may size the pool,
    ``?pool_max_size=20``, and say how long a call, and opening, keep trying a server they
    cannot reach, ``?pool_patience=30``; ``pool`` sets the same)."""
    if is_postgres(url):
        return _open_postgres(str(url), clock=clock, pool=pool)
    if pool is not None:
        raise ConfigError(
            f"pool= applies to a postgresql:// database, not to {hidden_password(str(url))!r}"
        )
    from agentrt.store.longterm import SqliteMemories
    from agentrt.store.sqlite import SqliteStore
    from agentrt.store.sqlite.checkpoints import Checkpoints

    path = sqlite_path(url)
    store = SqliteStore(path, clock=clock)
    saver = Checkpoints(path)
    saver.setup()
    return OpenedStore(store=store, checkpointer=saver, memories=SqliteMemories(path))


def _open_postgres(
    url: str, *, clock: Callable[[], float], pool: PoolSettings | None
) -> OpenedStore:
    try:
        from agentrt.store.longterm import postgres_memories
        from agentrt.store.postgres import PostgresStore
        from agentrt.store.postgres.checkpoints import Checkpoints as PostgresCheckpoints
    except ImportError as exc:
        raise ConfigError(
            f"a postgresql:// database needs the optional extra 'postgres' ({exc.name} is "
            "missing): pip install 'agentrt[postgres]'"
        ) from None
    store = PostgresStore(url, clock=clock, pool=pool)
    return OpenedStore(
        store=store,
        checkpointer=PostgresCheckpoints(store.db),
        memories=postgres_memories(store.db),
    )
