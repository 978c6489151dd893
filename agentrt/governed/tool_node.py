"""rt.tool_node(): LangGraph's own ToolNode, every call of it governed by agentrt.

The node is a real ``langgraph.prebuilt.ToolNode`` (same input: the last AIMessage's tool
calls in a messages state, a list or a Send; same output: ToolMessages), whose
``wrap_tool_call`` hands each call to the Governor instead of calling the tool itself.
Its ``tools_by_name`` are the runtime's tools as LangChain tools, for ``bind_tools``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool, StructuredTool
from langgraph.prebuilt import ToolNode
from langgraph.prebuilt.tool_node import ToolCallRequest
from langgraph.types import Command

from agentrt.errors import ConfigError
from agentrt.governed.calls import Governor
from agentrt.steps import adrive, drive
from agentrt.tools.contract import ToolSpec
from agentrt.tools.registry import ToolRegistry

__all__ = ["ToolCallHandler", "governed_tool_node", "langchain_tools", "offered_names"]


def offered_names(registry: ToolRegistry, tools: Iterable[str | ToolSpec] | None) -> list[str]:
    """The names of the tools a node offers: all of the runtime's, or those named."""
    if tools is None:
        return registry.names()
    names = []
    for item in tools:
        name = item.name if isinstance(item, ToolSpec) else item
        if not isinstance(name, str) or registry.get(name) is None:
            raise ConfigError(
                f"tools= names the runtime's tools (names or @tool specs), got {item!r}; "
                f"the runtime has {registry.names()!r}: add it with AgentRuntime(tools=[...])"
            )
        names.append(name)
    return names


def _not_called(**_: Any) -> str:
    raise RuntimeError("a governed tool is called through agentrt, never directly")


def langchain_tools(registry: ToolRegistry, names: Iterable[str]) -> list[BaseTool]:
    """The named tools as LangChain tools, carrying their schemas (for bind_tools and
    create_agent); calling one directly is an error: the governed node calls them."""
    made: list[BaseTool] = []
    for name in names:
        spec = registry.get(name)
        assert spec is not None
        function = spec.schema()["function"]
        made.append(
            StructuredTool(
                name=spec.name,
                description=spec.description or spec.name,
                args_schema=function["parameters"],
                func=_not_called,
            )
        )
    return made


class ToolCallHandler:
    """ToolNode's ``wrap_tool_call`` and ``awrap_tool_call``: each call through the
    Governor; the ToolNode's own ``execute`` is never used."""

    def __init__(self, governor: Governor, offered: Iterable[str]) -> None:
        self.governor = governor
        self.offered = frozenset(offered)

    def wrap(
        self,
        request: ToolCallRequest,
        execute: Callable[[ToolCallRequest], ToolMessage | Command[Any]],
    ) -> ToolMessage | Command[Any]:
        return drive(
            self.governor.call(request.tool_call, request.runtime.config, offered=self.offered)
        )

    async def awrap(
        self,
        request: ToolCallRequest,
        execute: Callable[[ToolCallRequest], Awaitable[ToolMessage | Command[Any]]],
    ) -> ToolMessage | Command[Any]:
        return await adrive(
            self.governor.call(request.tool_call, request.runtime.config, offered=self.offered)
        )


def governed_tool_node(
    governor: Governor,
    registry: ToolRegistry,
    tools: Iterable[str | ToolSpec] | None,
    *,
    name: str = "tools",
    messages_key: str = "messages",
) -> ToolNode:
    """A ToolNode whose every call agentrt governs (see the module's docstring)."""
    names = offered_names(registry, tools)
    handler = ToolCallHandler(governor, names)
    return ToolNode(
        langchain_tools(registry, names),
        name=name,
        messages_key=messages_key,
        # Errors the model should see come back as ToolMessages already; what is raised
        # (a budget stop, a refused decision, a bad config) must reach the caller.
        handle_tool_errors=False,
        wrap_tool_call=handler.wrap,
        awrap_tool_call=handler.awrap,
    )
