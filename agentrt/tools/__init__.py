"""Tools: the contract (@tool), the registry, the exactly-once ledger, the sandbox."""

from agentrt.tools.adapters import as_tool
from agentrt.tools.contract import Effect, ToolArgsError, ToolContext, ToolError, ToolSpec, tool
from agentrt.tools.execution import ToolFailure, ToolRunner
from agentrt.tools.ledger import EffectInDoubt, Ledger, effect_key
from agentrt.tools.registry import ToolLike, ToolRegistry

__all__ = [
    "Effect",
    "EffectInDoubt",
    "Ledger",
    "ToolArgsError",
    "ToolContext",
    "ToolError",
    "ToolFailure",
    "ToolLike",
    "ToolRegistry",
    "ToolRunner",
    "ToolSpec",
    "as_tool",
    "effect_key",
    "tool",
]
