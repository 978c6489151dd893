"""What an app says of a tool over what the tool says of itself.

An MCP server's annotations are hints from whoever wrote the server, and a LangChain tool
says nothing of its effect; the person deploying it has the last word. A ToolOverride
holds that word for one tool (its effect, idempotency, scopes, price, sensitive fields,
timeout), given in Python (``MCPServer.stdio(..., overrides={...})``) or in the policy
file (``tools: {git_commit: {effect: irreversible}}``), and is checked exactly as @tool
checks the same options.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from agentrt.errors import ConfigError
from agentrt.tools.contract import Effect, ToolOptions, ToolSpec, tool

__all__ = ["ToolOverride", "overrides_of"]


@dataclass(frozen=True, kw_only=True, slots=True)
class ToolOverride:
    """Options that replace a tool's own; each None leaves the tool's as it is."""

    effect: Effect | str | None = None
    """read, write or irreversible."""
    idempotent: bool | None = None
    """True if the tool passes the idempotency key on, so calling it twice is safe."""
    scopes: tuple[str, ...] | None = None
    """Scopes a principal must hold, all of them, for the tool to be offered or run."""
    cost_usd: float | None = None
    """Declared price of one call, counted against Budget.max_cost_usd."""
    sensitive: tuple[str, ...] | None = None
    """Argument and result field names to mask wherever they are shown."""
    timeout: float | None = None
    """Seconds one attempt may take."""

    @classmethod
    def of(cls, value: ToolOverride | Mapping[str, Any], *, tool_name: str) -> ToolOverride:
        """An override from a mapping of its fields (unknown ones refused by name)."""
        if isinstance(value, ToolOverride):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(
                f"the override of tool {tool_name!r} is {value!r}; give a mapping such as "
                "{'effect': 'write', 'scopes': ['repo:write']} or a ToolOverride"
            )
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(value) - set(known))
        if unknown:
            raise ConfigError(
                f"the override of tool {tool_name!r} has unknown options {unknown!r}; it may "
                f"set {known!r}"
            )
        given = dict(value)
        for label in ("scopes", "sensitive"):
            items = given.get(label)
            if isinstance(items, str):
                raise ConfigError(
                    f"tool {tool_name!r}: {label} must be a list, got the string {items!r}; "
                    f"write {label}=[{items!r}]"
                )
            if items is not None:
                given[label] = tuple(items)
        return cls(**given)

    def given(self) -> dict[str, Any]:
        """The options this override sets, by name."""
        return {
            f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None
        }

    def apply(self, spec: ToolSpec) -> ToolSpec:
        """``spec`` with these options in place of its own, checked as @tool checks them."""
        given = self.given()
        if not given:
            return spec
        options: ToolOptions = {
            "effect": spec.effect,
            "idempotent": spec.idempotent,
            "scopes": spec.scopes,
            "cost_usd": spec.cost_usd,
            "sensitive": spec.sensitive,
            "timeout": spec.timeout,
        }
        options.update(given)  # type: ignore[typeddict-item]
        checked = tool(name=spec.name, description=spec.description, **options)(_no_work)
        if spec.prepare is not None and checked.effect is not Effect.IRREVERSIBLE:
            raise ConfigError(
                f"tool {spec.name!r} has a prepare= step, which only an irreversible tool "
                f"has; an override cannot make it {checked.effect.value!r}"
            )
        return replace(
            spec,
            effect=checked.effect,
            idempotent=checked.idempotent,
            scopes=checked.scopes,
            cost_usd=checked.cost_usd,
            sensitive=checked.sensitive,
            timeout=checked.timeout,
        )


def overrides_of(
    given: Mapping[str, ToolOverride | Mapping[str, Any]] | None,
) -> dict[str, ToolOverride]:
    """Overrides by tool name, each checked for its shape (names are checked where the tools
    are known)."""
    if given is None:
        return {}
    if not isinstance(given, Mapping):
        raise ConfigError(
            f"overrides must map tool names to their options, got {given!r}; for example "
            "{'git_commit': {'effect': 'irreversible'}}"
        )
    return {str(name): ToolOverride.of(value, tool_name=str(name)) for name, value in given.items()}


def unknown_names(names: Iterable[str], known: Iterable[str]) -> list[str]:
    """The names in ``names`` that no tool in ``known`` has, sorted."""
    have = set(known)
    return sorted(n for n in names if n not in have)


def _no_work() -> None:
    """Stands in for the tool's work while an override's options are checked."""
