"""Tools: the contract (@tool), the registry, and the exactly-once ledger."""

from agentrt.tools.contract import Effect, ToolArgsError, ToolContext, ToolError, ToolSpec, tool
from agentrt.tools.ledger import EffectInDoubt, Ledger, effect_key
from agentrt.tools.registry import ToolRegistry

__all__ = [
    "Effect",
    "EffectInDoubt",
    "Ledger",
    "ToolArgsError",
    "ToolContext",
    "ToolError",
    "ToolRegistry",
    "ToolSpec",
    "effect_key",
    "tool",
]
