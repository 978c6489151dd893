"""Persistence behind one set of protocols (agentrt.store.protocols): SQLite today.

The records the store keeps are agentrt.records; the protocols, one per table family, are
agentrt.store.protocols.

``open_store(url)`` gives the store and its LangGraph checkpointer for a path or URL:
``agentrt.db``, ``sqlite:///path/to/file.db``. Nothing outside this package touches a
database connection.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver

from agentrt.errors import ConfigError
from agentrt.store.protocols import Store

__all__ = ["OpenedStore", "Store", "open_store", "sqlite_path"]


@dataclass(frozen=True, slots=True)
class OpenedStore:
    """A store and the LangGraph checkpointer on the same database."""

    store: Store
    checkpointer: BaseCheckpointSaver[Any]

    def close(self) -> None:
        """Close the checkpointer's connection, then the store's."""
        close = getattr(self.checkpointer, "close", None)
        if close is not None:
            close()
        self.store.close()


def sqlite_path(url: str | Path) -> str:
    """The file a SQLite path or URL names. As in SQLAlchemy, what follows
    ``sqlite:///`` is the path: ``sqlite:///agentrt.db`` is relative,
    ``sqlite:////var/lib/agentrt.db`` absolute. ConfigError for any other scheme."""
    text = str(url)
    if text.startswith("sqlite:"):
        path = text[len("sqlite:///") :] if text.startswith("sqlite:///") else ""
        if not path:
            raise ConfigError(
                f"database URL {text!r} names no file; write sqlite:///relative/file.db "
                "or sqlite:////absolute/file.db"
            )
        return path
    if "://" in text:
        scheme = text.split("://", 1)[0]
        raise ConfigError(
            f"database URL {text!r} has scheme {scheme!r}, which this agentrt cannot open; "
            "give a SQLite file path (agentrt.db) or sqlite:///path/to/file.db"
        )
    return text


def open_store(url: str | Path, *, clock: Callable[[], float] = time.time) -> OpenedStore:
    """The store and checkpointer for ``url`` (a SQLite path or ``sqlite:///`` URL),
    migrated to this agentrt's schema."""
    from agentrt.store.sqlite import SqliteStore
    from agentrt.store.sqlite.checkpoints import Checkpoints

    path = sqlite_path(url)
    store = SqliteStore(path, clock=clock)
    saver = Checkpoints(path)
    saver.setup()
    return OpenedStore(store=store, checkpointer=saver)
