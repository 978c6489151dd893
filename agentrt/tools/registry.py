"""The tools a runtime knows, by name, and which of them a principal may be offered."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator

from langchain_core.tools import BaseTool

from agentrt.errors import ConfigError
from agentrt.principal import Principal
from agentrt.tools.contract import ToolSpec

__all__ = ["EVERY_FIELD", "ToolLike", "ToolRegistry"]

ToolLike = ToolSpec | BaseTool
"""What a runtime accepts as a tool: an @agentrt.tool, or a LangChain tool as it is."""


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


class ToolRegistry:
    """Tools by name; names are unique. LangChain tools are wrapped with as_tool()."""

    def __init__(self, tools: Iterable[ToolLike]) -> None:
        from agentrt.tools.adapters import as_tool

        self._tools: dict[str, ToolSpec] = {}
        for given in tools:
            spec = as_tool(given) if isinstance(given, BaseTool) else given
            if not isinstance(spec, ToolSpec):
                raise ConfigError(
                    f"{spec!r} is not an agentrt tool; decorate the function with "
                    "@agentrt.tool, or pass a LangChain tool (wrap it with as_tool() to "
                    "declare its effect and scopes)"
                )
            if spec.name in self._tools:
                raise ConfigError(f"two tools are named {spec.name!r}; tool names must be unique")
            self._tools[spec.name] = spec

    def get(self, name: str) -> ToolSpec | None:
        return self._tools.get(name)

    def names(self) -> list[str]:
        return list(self._tools)

    def sensitive_of(self, name: str) -> Collection[str]:
        """The fields tool ``name`` declares sensitive. For a tool this app does not have
        (a database read without its app, a tool since removed) nothing says which of its
        fields are harmless: every field counts as sensitive."""
        spec = self._tools.get(name)
        return spec.sensitive if spec is not None else EVERY_FIELD

    def offered_to(self, principal: Principal) -> list[ToolSpec]:
        """Tools whose required scopes the principal holds: the only ones the model sees."""
        return [t for t in self._tools.values() if set(t.scopes) <= set(principal.scopes)]

    def __iter__(self) -> Iterator[ToolSpec]:
        return iter(self._tools.values())

    def __len__(self) -> int:
        return len(self._tools)
