"""memory_tools(): long-term memory as tools the model calls itself.

Each is an ordinary tool: ``memory_search`` and ``memory_get`` are reads, ``memory_put``
and ``memory_forget`` are writes, so policy rules match them (by name or by effect), a
rule may put a write before a person, and the ledger records each write once.
"""

from __future__ import annotations

from typing import Any

from agentrt.errors import ConfigError
from agentrt.tools.contract import ToolContext, ToolSpec, tool
from agentrt.tools.errors import ToolError
from agentrt.tools.memory import Memory

__all__ = ["MAX_SEARCH", "memory_tools"]

MAX_SEARCH = 100
"""Most items one ``<prefix>_search`` call returns, whatever limit the model asks for."""


def memory_tools(*, personal: bool = False, prefix: str = "memory") -> list[ToolSpec]:
    """Tools that search, read, remember and forget items of the run's tenant's memory
    (``personal=True``: of the run's principal's own), named ``<prefix>_search``,
    ``<prefix>_get``, ``<prefix>_put`` and ``<prefix>_forget``."""
    if not isinstance(prefix, str) or not prefix.isidentifier():
        raise ConfigError(
            f"memory_tools prefix must be a Python identifier (letters, digits and _), got "
            f"{prefix!r}; the tools are named <prefix>_search and so on, e.g. prefix='notes'"
        )
    whose = "your own" if personal else "the team's shared"

    def view(ctx: ToolContext) -> Memory:
        return ctx.memory.personal if personal else ctx.memory

    @tool(name=f"{prefix}_search", description=f"List {whose} remembered items, latest first.")
    def search(namespace: str = "", limit: int = 10, *, ctx: ToolContext) -> list[dict[str, Any]]:
        """List remembered items.

        Args:
            namespace: Where to look, labels separated by "/" (e.g. "customers"); empty: all.
            limit: At most this many items, 1 to 100 (more is cut to 100).
        """
        # The store takes a limit below 1 as none at all: every item of the tenant.
        if limit < 1:
            raise ToolError(
                f"limit must be at least 1, got {limit!r}; ask for 1 to {MAX_SEARCH} items"
            )
        found = view(ctx).search(namespace, limit=min(limit, MAX_SEARCH))
        return [item.to_dict() for item in found]

    @tool(name=f"{prefix}_get", description=f"Read one of {whose} remembered items.")
    def get(namespace: str, key: str, *, ctx: ToolContext) -> dict[str, Any] | None:
        """Read one remembered item.

        Args:
            namespace: Where it is, labels separated by "/".
            key: Its key.
        """
        item = view(ctx).get(namespace, key)
        return None if item is None else item.to_dict()

    @tool(
        name=f"{prefix}_put",
        description=f"Remember a JSON object in {whose} memory, for later runs.",
        effect="write",
        idempotent=True,
    )
    def put(namespace: str, key: str, value: dict[str, Any], *, ctx: ToolContext) -> dict[str, Any]:
        """Remember a JSON object.

        Args:
            namespace: Where to keep it, labels separated by "/" (e.g. "customers").
            key: Its key: writing the same key again replaces the value.
            value: The JSON object to remember.
        """
        view(ctx).put(namespace, key, value)
        return {"remembered": f"{namespace}/{key}"}

    @tool(
        name=f"{prefix}_forget",
        description=f"Forget one of {whose} remembered items.",
        effect="write",
        idempotent=True,
    )
    def forget(namespace: str, key: str, *, ctx: ToolContext) -> dict[str, Any]:
        """Forget one remembered item.

        Args:
            namespace: Where it is, labels separated by "/".
            key: Its key.
        """
        return {"forgotten": view(ctx).delete(namespace, key)}

    return [search, get, put, forget]
