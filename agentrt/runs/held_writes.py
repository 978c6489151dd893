"""A run's graph driven with its checkpoint writes held back (agentrt.store.held): every
node's writes wait for the checkpoint that follows them, and after a pure node that
checkpoint waits for the next write. Invoked or streamed, sync or async, the thread is held
for as long as the graph runs, and what it still holds is written when the graph stops."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from agentrt.nodes import NODES, PURE_NODES
from agentrt.steps import to_thread_unbroken
from agentrt.store.held import HoldsWrites

__all__ = ["aholding", "holding"]


_OTHERS = frozenset(node.name for node in NODES) - PURE_NODES | {"__start__"}
"""The nodes whose writes wait only for the checkpoint that follows them; LangGraph's
__start__ writes the run's input."""


def _saver(graph: Any) -> HoldsWrites | None:
    saver = getattr(graph, "checkpointer", None)
    return saver if isinstance(saver, HoldsWrites) else None


@contextmanager
def holding(graph: Any, thread_id: str, owner: str | None = None) -> Iterator[None]:
    """While the block runs ``graph`` on ``thread_id``, its nodes' writes are held; each
    write only while ``owner`` (if given) still holds the run's lease."""
    saver = _saver(graph)
    if saver is None:
        yield
        return
    saver.hold(thread_id, PURE_NODES, _OTHERS, owner)
    try:
        yield
    finally:
        saver.release(thread_id)


@asynccontextmanager
async def aholding(graph: Any, thread_id: str, owner: str | None = None) -> AsyncIterator[None]:
    """``holding`` on the event loop: what is still held is written off the loop."""
    saver = _saver(graph)
    if saver is None:
        yield
        return
    saver.hold(thread_id, PURE_NODES, _OTHERS, owner)
    try:
        yield
    finally:
        # Waited out by a cancel: what LangGraph counts as written is stored (and the thread
        # no longer held) before the segment lets its lease go.
        await to_thread_unbroken(saver.release, thread_id)
