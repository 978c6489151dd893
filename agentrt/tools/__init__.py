"""Tools: the contract (@tool), toolsets and the registry, the tool loop, the exactly-once
ledger, the sandbox."""

from agentrt.tools.adapters import as_tool, schema_tool
from agentrt.tools.contract import Effect, ToolArgsError, ToolContext, ToolError, ToolSpec, tool
from agentrt.tools.errors import OutcomeUnknown
from agentrt.tools.execution import ToolFailure, ToolRunner
from agentrt.tools.jsonargs import JsonSchemaArgs
from agentrt.tools.ledger import EffectInDoubt, Ledger, effect_key
from agentrt.tools.loop import LoopThread, LoopTimeout, default_loop
from agentrt.tools.overrides import ToolOverride
from agentrt.tools.registry import ToolChanges, ToolLike, ToolRegistry
from agentrt.tools.toolset import (
    FunctionToolset,
    LangChainToolset,
    LocalToolset,
    Toolset,
    toolset_tool,
)

__all__ = [
    "Effect",
    "EffectInDoubt",
    "FunctionToolset",
    "JsonSchemaArgs",
    "LangChainToolset",
    "Ledger",
    "LocalToolset",
    "LoopThread",
    "LoopTimeout",
    "OutcomeUnknown",
    "ToolArgsError",
    "ToolChanges",
    "ToolContext",
    "ToolError",
    "ToolFailure",
    "ToolLike",
    "ToolOverride",
    "ToolRegistry",
    "ToolRunner",
    "ToolSpec",
    "Toolset",
    "as_tool",
    "default_loop",
    "effect_key",
    "schema_tool",
    "tool",
    "toolset_tool",
]
