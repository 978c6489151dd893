"""Toolsets: where a runtime's tools come from, listed and called on the tool loop.

A toolset has a name, lists its tools (``list_tools``) and calls one (``call``); it may
also hold a resource between calls, opened by ``start()`` and released by ``close()`` (an
MCP server's session). The registry runs all of these on the runtime's tool loop
(agentrt.tools.loop), so a session made in ``start`` is on the loop every later call uses,
and it lists a toolset again on ``refresh`` (its tools may change while the runtime runs).

FunctionToolset holds @tool functions and LangChainToolset LangChain tools: local tools,
known without I/O, so a registry lists them at once. A toolset whose tools live elsewhere
builds each with ``toolset_tool``: the spec's work is its toolset's ``call``.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

from langchain_core.tools import BaseTool
from langgraph.types import RetryPolicy
from typing_extensions import Unpack

from agentrt.errors import ConfigError
from agentrt.tools.adapters import as_tool, schema_tool
from agentrt.tools.contract import Effect, SchemaToolOptions, ToolContext, ToolOptions, ToolSpec

__all__ = [
    "FunctionToolset",
    "LangChainToolset",
    "LocalToolset",
    "Toolset",
    "call_spec",
    "close_toolset",
    "start_toolset",
    "toolset_tool",
]


@runtime_checkable
class Toolset(Protocol):
    """A source of tools. Optional: ``async def start()`` and ``async def close()``."""

    @property
    def name(self) -> str:
        """Unique among a runtime's toolsets; says where a tool came from in errors."""
        ...

    async def list_tools(self) -> list[ToolSpec]:
        """Its tools as they are now; called at start and on each refresh."""
        ...

    async def call(self, spec: ToolSpec, args: dict[str, Any], ctx: ToolContext) -> Any:
        """Run one of its tools, as this toolset listed it, on validated JSON arguments."""
        ...


async def start_toolset(toolset: Toolset) -> None:
    """Open what the toolset holds (a session), if it has a ``start``."""
    start = getattr(toolset, "start", None)
    if start is not None:
        await start()


async def close_toolset(toolset: Toolset) -> None:
    """Release what the toolset holds, if it has a ``close``."""
    close = getattr(toolset, "close", None)
    if close is not None:
        await close()


async def call_spec(spec: ToolSpec, args: Mapping[str, Any], ctx: ToolContext) -> Any:
    """Run a spec's own function once, without blocking the loop: a coroutine is awaited,
    a sync function runs in a worker thread."""
    kwargs = spec.bind(args, ctx)
    if inspect.iscoroutinefunction(spec.fn):
        return await spec.fn(**kwargs)
    return await asyncio.to_thread(spec.fn, **kwargs)


class LocalToolset:
    """Tools known in this process, by name: listed without I/O, changed with add/remove.

    The runner calls their functions directly (a sync tool in the caller's thread, as
    ever); ``call`` is the same call for code that goes through the toolset.
    """

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigError(f"a toolset's name must be a non-empty string, got {name!r}")
        self._name = name
        self._specs: dict[str, ToolSpec] = {}

    @property
    def name(self) -> str:
        return self._name

    def tools(self) -> list[ToolSpec]:
        """Its tools now, without awaiting: what lets a registry list it at once."""
        return list(self._specs.values())

    async def list_tools(self) -> list[ToolSpec]:
        return self.tools()

    async def call(self, spec: ToolSpec, args: dict[str, Any], ctx: ToolContext) -> Any:
        return await call_spec(spec, args, ctx)

    def remove(self, name: str) -> None:
        """Drop tool ``name``; the registry forgets it at its next refresh."""
        if name not in self._specs:
            raise ConfigError(
                f"toolset {self._name!r} has no tool {name!r}; it has {sorted(self._specs)!r}"
            )
        del self._specs[name]

    def _put(self, spec: ToolSpec) -> None:
        if spec.name in self._specs:
            raise ConfigError(
                f"toolset {self._name!r} has two tools named {spec.name!r}; tool names must "
                "be unique"
            )
        self._specs[spec.name] = spec

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._name!r}, tools={sorted(self._specs)!r})"


class FunctionToolset(LocalToolset):
    """@agentrt.tool functions as a toolset."""

    def __init__(self, tools: Iterable[ToolSpec] = (), *, name: str = "functions") -> None:
        super().__init__(name)
        for spec in tools:
            self.add(spec)

    def add(self, spec: ToolSpec) -> None:
        """Add a tool; the registry offers it from its next refresh."""
        if not isinstance(spec, ToolSpec):
            raise ConfigError(
                f"{spec!r} is not an agentrt tool; decorate the function with @agentrt.tool "
                f"to add it to toolset {self.name!r}"
            )
        self._put(spec)


class LangChainToolset(LocalToolset):
    """LangChain tools as a toolset, each wrapped by as_tool() with the options given here.

    Tools already wrapped (``as_tool(t, ...)`` with options of their own) go in as they are.
    """

    def __init__(
        self,
        tools: Iterable[BaseTool | ToolSpec] = (),
        *,
        name: str = "langchain",
        effect: Effect | str = Effect.WRITE,
        scopes: Iterable[str] = (),
        idempotent: bool = False,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        super().__init__(name)
        self._options: ToolOptions = {
            "effect": effect,
            "scopes": tuple(scopes),
            "idempotent": idempotent,
            "timeout": timeout,
            "retry": retry,
        }
        for given in tools:
            self.add(given)

    def add(self, lc_tool: BaseTool | ToolSpec) -> None:
        """Add a LangChain tool (or one already wrapped with as_tool)."""
        if isinstance(lc_tool, ToolSpec):
            self._put(lc_tool)
        elif isinstance(lc_tool, BaseTool):
            self._put(as_tool(lc_tool, **self._options))
        else:
            raise ConfigError(
                f"{lc_tool!r} is not a LangChain tool; toolset {self.name!r} takes BaseTool "
                "instances (StructuredTool, @langchain_core.tools.tool)"
            )


def toolset_tool(
    toolset: Toolset,
    *,
    name: str,
    description: str,
    schema: Mapping[str, Any],
    **options: Unpack[SchemaToolOptions],
) -> ToolSpec:
    """A tool of a remote toolset (an MCP server's): its arguments a JSON Schema, its work
    ``toolset.call(spec, args, ctx)`` on the tool loop. ``options`` are schema_tool's
    (effect, scopes, idempotent, timeout, ...).

    The spec's ``fn`` is what calls the toolset, so anything that swaps a tool's work (a
    replay, a test) swaps it the one way it swaps a function tool's.
    """
    spec: ToolSpec | None = None

    async def through_toolset(args: dict[str, Any], ctx: ToolContext) -> Any:
        assert spec is not None
        return await toolset.call(spec, args, ctx)

    spec = schema_tool(
        through_toolset, name=name, description=description, schema=schema, **options
    )
    return spec
