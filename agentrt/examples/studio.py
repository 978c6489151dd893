"""The refund desk in LangGraph Studio: the graph factory ``langgraph.json`` names.

``langgraph dev`` (``pip install 'agentrt[studio]'``) serves the refund desk's run graph:
its server keeps the checkpoints and the thread ids, agentrt keeps its runs, approvals and
ledger in the SQLite file (or PostgreSQL URL) ``AGENTRT_DB`` names (default
``agentrt-studio.db`` in the directory the server runs in). The model is the demo's
scripted one, so it runs offline; ``AGENTRT_MODEL=provider:name`` (``openai:gpt-4.1``,
with the provider's package and key) plans with a real one.

Each thread acts for the demo's operator (alice, tenant acme): the development server has
no sign-in, so the app says whom its threads act for.
"""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

from agentrt import AgentRuntime
from agentrt.examples.refund_desk import OPERATOR, build_runtime

__all__ = ["DB_VARIABLE", "DEFAULT_DB", "make_graph", "runtime"]

DB_VARIABLE = "AGENTRT_DB"
"""The environment variable naming agentrt's database under the server."""

DEFAULT_DB = "agentrt-studio.db"
"""agentrt's database when ``AGENTRT_DB`` is not set, in the server's working directory."""

_lock = threading.Lock()
_built: dict[str, tuple[AgentRuntime, Any]] = {}


def runtime() -> AgentRuntime:
    """The refund desk runtime the served graph uses, built once a process."""
    return _served()[0]


async def make_graph() -> Any:
    """The refund desk's run graph as the LangGraph API server runs it: it calls this for
    each request, so the runtime and the graph are built once a process. Async, built in a
    worker thread: the server refuses blocking calls (opening the database) on its loop."""
    return (await asyncio.to_thread(_served))[1]


def _served() -> tuple[AgentRuntime, Any]:
    db = os.environ.get(DB_VARIABLE) or DEFAULT_DB
    with _lock:
        if db not in _built:
            options: dict[str, Any] = {}
            if model := os.environ.get("AGENTRT_MODEL"):
                options["model"] = model
            rt = build_runtime(db, **options)
            _built[db] = (rt, rt.served_graph(principal=OPERATOR, name="refund_desk"))
        return _built[db]
