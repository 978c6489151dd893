"""The tools a runtime knows, by name, where each came from, and which a principal is offered.

Plain tools (@agentrt.tool functions, LangChain tools) are fixed when the registry is made.
Toolsets are listed: local ones (FunctionToolset, LangChainToolset) at once, others (an MCP
server) by ``start()``, and any of them again by ``refresh()``. Every toolset method runs
on the registry's tool loop, the one the runner calls async tools on, so a session a
toolset opens in ``start`` serves every later call. A name two tools share is a ConfigError
naming where each came from, and leaves the registry as it was.

A toolset that knows its list changed (an MCP server's tools/list_changed) says so with
``changed``; the registry lists it again when tools are next offered to a planner, so a
run that starts later plans with the new list. A tool a refresh removed is still found by
``get``: a run that planned a call of it goes on with the spec it planned with (and the
call fails if the server no longer has it). Overrides (``override``) replace what a tool
says of itself with what the app says, on every listing.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from langchain_core.tools import BaseTool

from agentrt.errors import ConfigError
from agentrt.logs import get_logger
from agentrt.principal import Principal
from agentrt.tools.adapters import as_tool
from agentrt.tools.contract import ToolSpec
from agentrt.tools.loop import LoopThread, default_loop
from agentrt.tools.overrides import ToolOverride, overrides_of, unknown_names
from agentrt.tools.toolset import LocalToolset, Toolset, close_toolset, start_toolset

logger = get_logger("agentrt.tools")

__all__ = ["EVERY_FIELD", "ToolChanges", "ToolLike", "ToolRegistry"]

ToolLike: TypeAlias = ToolSpec | BaseTool | Toolset
"""What a runtime accepts as a tool: an @agentrt.tool, a LangChain tool as it is, or a
toolset of them."""


class _EveryField(Collection[str]):
    """A collection of field names that holds every name."""

    def __contains__(self, item: object) -> bool:
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "EVERY_FIELD"


EVERY_FIELD: Collection[str] = _EveryField()
"""The sensitive fields of a tool nobody declared: all of them."""


@dataclass(frozen=True, slots=True)
class ToolChanges:
    """What a refresh changed, by tool name."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    replaced: tuple[str, ...] = ()
    """Still there, as a new spec (its schema or options may differ)."""


# One entry per item given, in order: a plain tool, or a toolset by name.
_Source: TypeAlias = ToolSpec | str


class ToolRegistry:
    """Tools by name; names are unique. LangChain tools are wrapped with as_tool()."""

    def __init__(self, tools: Iterable[ToolLike] = (), *, loop: LoopThread | None = None) -> None:
        self._loop = loop
        self._sources: list[_Source] = []
        self._toolsets: dict[str, Toolset] = {}
        self._listed: dict[str, tuple[ToolSpec, ...]] = {}
        self._started: set[str] = set()
        self._busy: asyncio.Lock | None = None
        self._overrides: dict[str, ToolOverride] = {}
        # An overridden spec per (listed spec, override), so a listing that did not change
        # gives the same objects again (a refresh reports no change for them).
        self._applied: dict[tuple[int, ToolOverride], tuple[ToolSpec, ToolSpec]] = {}
        self._retired: dict[str, ToolSpec] = {}
        plain: set[str] = set()
        for given in tools:
            if isinstance(given, ToolSpec | BaseTool):
                spec = as_tool(given) if isinstance(given, BaseTool) else given
                if spec.name in plain:
                    raise ConfigError(
                        f"two tools are named {spec.name!r}; tool names must be unique"
                    )
                plain.add(spec.name)
                self._sources.append(spec)
            elif isinstance(given, Toolset):
                if given.name in self._toolsets:
                    raise ConfigError(
                        f"two toolsets are named {given.name!r}; give one of them another "
                        "name= so each tool's origin can be told"
                    )
                self._toolsets[given.name] = given
                self._sources.append(given.name)
                if isinstance(given, LocalToolset):
                    self._listed[given.name] = _checked(given.name, given.tools())
            else:
                raise ConfigError(
                    f"{given!r} is not an agentrt tool; decorate the function with "
                    "@agentrt.tool, or pass a LangChain tool (wrap it with as_tool() to "
                    "declare its effect and scopes)"
                )
        self._tools, self._origins = self._merged(self._listed)

    # reading -----------------------------------------------------------------------------

    def get(self, name: str) -> ToolSpec | None:
        """The tool named ``name``; also one a refresh removed, for the runs that planned
        with it."""
        return self._tools.get(name) or self._retired.get(name)

    def names(self) -> list[str]:
        return list(self._tools)

    def origin(self, name: str) -> str | None:
        """The name of the toolset tool ``name`` came from; None for a plain tool (or none)."""
        return self._origins.get(name)

    @property
    def toolsets(self) -> list[Toolset]:
        return list(self._toolsets.values())

    def servers(self) -> list[str]:
        """The names of its toolsets that are MCP servers (what ``match: servers`` names)."""
        return [n for n, t in self._toolsets.items() if _kind(t) == "MCP server"]

    def credentials(self) -> set[str]:
        """Every credential its tools declare (what a policy's ``credentials:`` grants)."""
        return {c for name in self.names() if (spec := self.get(name)) for c in spec.credentials}

    def override(self, overrides: Mapping[str, ToolOverride | Mapping[str, Any]] | None) -> None:
        """Replace what tools say of themselves with ``overrides`` (by tool name), from now
        on and on every later listing; None or {} drops every override.

        A name no tool has is a ConfigError naming the tools there are, and changes nothing.
        """
        checked = overrides_of(overrides)
        unknown = unknown_names(checked, self._raw_names(self._listed))
        if unknown:
            raise ConfigError(
                f"overrides name tools this runtime does not have: {unknown!r}; its tools are "
                f"{sorted(self._raw_names(self._listed))!r}"
            )
        before = self._overrides
        self._overrides = checked
        try:
            self._tools, self._origins = self._merged(self._listed)
        except BaseException:
            self._overrides = before
            raise
        self._prune_applied()

    @property
    def loop(self) -> LoopThread:
        """Where toolsets start, list, close and (through the runner) are called."""
        return self._loop if self._loop is not None else default_loop()

    def sensitive_of(self, name: str) -> Collection[str]:
        """The fields tool ``name`` declares sensitive. For a tool this app does not have
        (a database read without its app, a tool since removed) nothing says which of its
        fields are harmless: every field counts as sensitive."""
        spec = self._tools.get(name)
        return spec.sensitive if spec is not None else EVERY_FIELD

    def offered_to(self, principal: Principal) -> list[ToolSpec]:
        """Tools whose required scopes the principal holds: the only ones the model sees.

        A toolset whose list changed since it was listed is listed again first."""
        self.pick_up_changes()
        return [t for t in self._tools.values() if set(t.scopes) <= set(principal.scopes)]

    def changed(self) -> list[str]:
        """The toolsets that say their tools changed since they were last listed."""
        return [
            n
            for n, t in self._toolsets.items()
            if n in self._started and getattr(t, "changed", False) is True
        ]

    def pick_up_changes(self) -> ToolChanges:
        """List again each toolset whose list changed (blocks until done).

        Called as a plan is made. A listing that fails (the server is down, a new name
        clashes) is logged and the registry keeps the tools it had: a planner is never
        stopped by a server's change of list.
        """
        names = self.changed()
        # On the tool loop's own thread nothing may wait for the loop: the next plan lists.
        if not names or threading.get_ident() == self.loop.thread_ident:
            return ToolChanges()
        try:
            changes = self.loop.run(self._refresh_each(names))
        except Exception as exc:
            logger.warning("the tools of %s changed, but listing them again failed: %s", names, exc)
            return ToolChanges()
        if changes.added or changes.removed or changes.replaced:
            logger.info(
                "tools changed: added %s, removed %s, replaced %s",
                list(changes.added),
                list(changes.removed),
                list(changes.replaced),
            )
        return changes

    def __iter__(self) -> Iterator[ToolSpec]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)

    # toolsets' lifecycle, on the tool loop -----------------------------------------------

    def start(self) -> ToolChanges:
        """Start every toolset not started yet and list them all (blocks until done)."""
        if not self._toolsets:  # plain tools only: no need for a loop at all
            return ToolChanges()
        try:
            return self.loop.run(self._refresh(None, start=True))
        except BaseException:
            self.close()  # what did start is not left running
            raise

    async def astart(self) -> ToolChanges:
        """``start`` for async callers."""
        if not self._toolsets:
            return ToolChanges()
        try:
            return await self.loop.arun(self._refresh(None, start=True))
        except BaseException:
            await self.aclose()
            raise

    def refresh(self, toolset: str | None = None) -> ToolChanges:
        """List toolset ``toolset`` (None: every toolset) again; what changed.

        A toolset not started yet is started first. A name clash refuses the whole refresh:
        the registry keeps the tools it had.
        """
        return self.loop.run(self._refresh(toolset, start=True))

    async def arefresh(self, toolset: str | None = None) -> ToolChanges:
        """``refresh`` for async callers."""
        return await self.loop.arun(self._refresh(toolset, start=True))

    def close(self) -> None:
        """Close every started toolset, last started first; the first error is raised
        after all were tried."""
        if self._started:
            self.loop.run(self._close())

    async def aclose(self) -> None:
        """``close`` for async callers."""
        if self._started:
            await self.loop.arun(self._close())

    async def _refresh_each(self, names: Iterable[str]) -> ToolChanges:
        added: list[str] = []
        removed: list[str] = []
        replaced: list[str] = []
        for name in names:
            changes = await self._refresh(name, start=True)
            added += changes.added
            removed += changes.removed
            replaced += changes.replaced
        return ToolChanges(tuple(added), tuple(removed), tuple(replaced))

    async def _refresh(self, name: str | None, *, start: bool) -> ToolChanges:
        if name is not None and name not in self._toolsets:
            raise ConfigError(
                f"no toolset named {name!r}; this registry has {sorted(self._toolsets)!r}"
            )
        if self._busy is None:  # made here, on the tool loop it then belongs to
            self._busy = asyncio.Lock()
        async with self._busy:  # one refresh at a time: each builds on the last
            targets = [name] if name is not None else list(self._toolsets)
            listed = dict(self._listed)
            for target in targets:
                toolset = self._toolsets[target]
                if start and target not in self._started:
                    try:
                        await start_toolset(toolset)
                    except BaseException as exc:
                        exc.add_note(f"(while starting toolset {target!r})")
                        raise
                    self._started.add(target)
                listed[target] = _checked(target, await toolset.list_tools())
            tools, origins = self._merged(listed)
            before = self._tools
            self._listed, self._tools, self._origins = listed, tools, origins
            for gone in set(before) - set(tools):
                self._retired[gone] = before[gone]
            for back in set(tools) & set(self._retired):
                del self._retired[back]
            self._prune_applied()
        return ToolChanges(
            added=tuple(n for n in tools if n not in before),
            removed=tuple(n for n in before if n not in tools),
            replaced=tuple(n for n in tools if n in before and tools[n] is not before[n]),
        )

    async def _close(self) -> None:
        first: BaseException | None = None
        for name in reversed(list(self._toolsets)):
            if name not in self._started:
                continue
            self._started.discard(name)
            try:
                await close_toolset(self._toolsets[name])
            except Exception as exc:  # the others still get closed
                exc.add_note(f"(while closing toolset {name!r})")
                first = first or exc
        if first is not None:
            raise first

    def _merged(
        self, listed: Mapping[str, tuple[ToolSpec, ...]]
    ) -> tuple[dict[str, ToolSpec], dict[str, str | None]]:
        """Every tool by name, in the order given, and where each came from."""
        tools: dict[str, ToolSpec] = {}
        origins: dict[str, str | None] = {}
        for source in self._sources:
            batch = (
                [(source, None)]
                if isinstance(source, ToolSpec)
                else [(spec, source) for spec in listed.get(source, ())]
            )
            for spec, origin in batch:
                if spec.name in tools and origin is not None and origins[spec.name] == origin:
                    raise ConfigError(
                        f"toolset {origin!r} lists two tools named {spec.name!r}; tool names "
                        "must be unique"
                    )
                if spec.name in tools:
                    hint = (
                        " (an MCP server takes prefix= to set its tools apart)"
                        if "MCP server" in (self._where(origins[spec.name]) + self._where(origin))
                        else ""
                    )
                    raise ConfigError(
                        f"two tools are named {spec.name!r}: one from "
                        f"{self._where(origins[spec.name])}, one from {self._where(origin)}; "
                        f"tool names must be unique: rename one{hint}, or leave one of them out"
                    )
                tools[spec.name] = self._overridden(spec)
                origins[spec.name] = origin
        return tools, origins

    def _overridden(self, spec: ToolSpec) -> ToolSpec:
        override = self._overrides.get(spec.name)
        if override is None:
            return spec
        key = (id(spec), override)
        cached = self._applied.get(key)
        if cached is not None and cached[0] is spec:
            return cached[1]
        applied = override.apply(spec)
        self._applied[key] = (spec, applied)
        return applied

    def _prune_applied(self) -> None:
        """Forget overridden specs of listings the registry no longer holds."""
        live = {id(spec) for specs in self._listed.values() for spec in specs}
        live |= {id(s) for s in self._sources if isinstance(s, ToolSpec)}
        self._applied = {k: v for k, v in self._applied.items() if k[0] in live}

    def _raw_names(self, listed: Mapping[str, tuple[ToolSpec, ...]]) -> list[str]:
        names = [s.name for s in self._sources if isinstance(s, ToolSpec)]
        return names + [spec.name for specs in listed.values() for spec in specs]

    def _where(self, origin: str | None) -> str:
        if origin is None:
            return "the tools list"
        toolset = self._toolsets.get(origin)
        return f"{_kind(toolset) if toolset is not None else 'toolset'} {origin!r}"


def _kind(toolset: Toolset) -> str:
    """What a toolset is, in words ("toolset", "MCP server"): its ``kind``, if it says."""
    kind = getattr(toolset, "kind", None)
    return kind if isinstance(kind, str) and kind else "toolset"


def _checked(toolset: str, specs: Iterable[object]) -> tuple[ToolSpec, ...]:
    """A toolset's listing, each an agentrt tool (a toolset's bug named, not a crash later)."""
    out = []
    for spec in specs:
        if not isinstance(spec, ToolSpec):
            raise ConfigError(
                f"toolset {toolset!r} listed {spec!r}, which is not an agentrt ToolSpec; "
                "a toolset's list_tools() returns ToolSpecs (see agentrt.tools.toolset_tool)"
            )
        out.append(spec)
    return tuple(out)
