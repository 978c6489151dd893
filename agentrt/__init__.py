"""agentrt: a durable runtime for tool-using agents, built on LangGraph.

Plans become operations that are policy-checked, budgeted, approved by a person where a
rule says so, executed exactly once, verified and traced; a run survives its process.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentrt.approvals import ApprovalPage, ApprovalRequest, ApprovalStatus, Decision
    from agentrt.artifacts import ArtifactRef, UnknownArtifact
    from agentrt.budget import Budget
    from agentrt.errors import (
        AgentRuntimeError,
        AlreadyDecided,
        ApprovalError,
        ApprovalExpired,
        BudgetExceeded,
        ConfigError,
        IllegalTransition,
        InvalidDecision,
        NotAuthorized,
        RunBusy,
        RunError,
        ThreadBusy,
        UnknownRun,
    )
    from agentrt.graphs import build_run_graph
    from agentrt.limits import SizeLimits
    from agentrt.policies import Policy, PolicyDecision, Rule
    from agentrt.principal import Principal
    from agentrt.replay import ReplayReport
    from agentrt.runs.messages import DoubleTexting, ThreadMessage
    from agentrt.runtime import AgentRuntime, Run, Sweep
    from agentrt.state import Action, Observation, ObservationKind, Plan, RunState, RunStatus, Usage
    from agentrt.summaries import Summarize
    from agentrt.tools import Effect, ToolContext, ToolError, ToolSpec, as_tool, tool
    from agentrt.tools.credentials import CredentialError, Credentials
    from agentrt.tools.mcp import MCPServer
    from agentrt.tools.memory import Memory, MemoryItem
    from agentrt.tools.memory_tools import memory_tools
    from agentrt.tools.sandbox import run_python
    from agentrt.tracing import Redactor, Trace

__version__ = "0.1.0"


__all__ = [
    "Action",
    "AgentRuntime",
    "AgentRuntimeError",
    "AlreadyDecided",
    "ApprovalError",
    "ApprovalExpired",
    "ApprovalPage",
    "ApprovalRequest",
    "ApprovalStatus",
    "ArtifactRef",
    "Budget",
    "BudgetExceeded",
    "ConfigError",
    "CredentialError",
    "Credentials",
    "Decision",
    "DoubleTexting",
    "Effect",
    "IllegalTransition",
    "InvalidDecision",
    "MCPServer",
    "Memory",
    "MemoryItem",
    "NotAuthorized",
    "Observation",
    "ObservationKind",
    "Plan",
    "Policy",
    "PolicyDecision",
    "Principal",
    "Redactor",
    "ReplayReport",
    "Rule",
    "Run",
    "RunBusy",
    "RunError",
    "RunState",
    "RunStatus",
    "SizeLimits",
    "Summarize",
    "Sweep",
    "ThreadBusy",
    "ThreadMessage",
    "ToolContext",
    "ToolError",
    "ToolSpec",
    "Trace",
    "UnknownArtifact",
    "UnknownRun",
    "Usage",
    "__version__",
    "as_tool",
    "build_run_graph",
    "memory_tools",
    "run_python",
    "tool",
]

# Each public name and the module that defines it. Importing a module happens on first
# use of one of its names, so `import agentrt` (and the `agentrt` command's --help) does
# not pay for LangGraph and LangChain until something needs them.
_SOURCES: dict[str, str] = {
    "Action": "agentrt.state",
    "AgentRuntime": "agentrt.runtime",
    "AgentRuntimeError": "agentrt.errors",
    "AlreadyDecided": "agentrt.errors",
    "ApprovalError": "agentrt.errors",
    "ApprovalExpired": "agentrt.errors",
    "ApprovalPage": "agentrt.approvals",
    "ApprovalRequest": "agentrt.approvals",
    "ApprovalStatus": "agentrt.approvals",
    "ArtifactRef": "agentrt.artifacts",
    "Budget": "agentrt.budget",
    "BudgetExceeded": "agentrt.errors",
    "ConfigError": "agentrt.errors",
    "CredentialError": "agentrt.tools.credentials",
    "Credentials": "agentrt.tools.credentials",
    "Decision": "agentrt.approvals",
    "DoubleTexting": "agentrt.runs.messages",
    "Effect": "agentrt.tools",
    "IllegalTransition": "agentrt.errors",
    "InvalidDecision": "agentrt.errors",
    "MCPServer": "agentrt.tools.mcp",
    "Memory": "agentrt.tools.memory",
    "MemoryItem": "agentrt.tools.memory",
    "NotAuthorized": "agentrt.errors",
    "Observation": "agentrt.state",
    "ObservationKind": "agentrt.state",
    "Plan": "agentrt.state",
    "Policy": "agentrt.policies",
    "PolicyDecision": "agentrt.policies",
    "Principal": "agentrt.principal",
    "Redactor": "agentrt.tracing",
    "ReplayReport": "agentrt.replay",
    "Rule": "agentrt.policies",
    "Run": "agentrt.runtime",
    "RunBusy": "agentrt.errors",
    "RunError": "agentrt.errors",
    "RunState": "agentrt.state",
    "RunStatus": "agentrt.state",
    "SizeLimits": "agentrt.limits",
    "Summarize": "agentrt.summaries",
    "Sweep": "agentrt.runtime",
    "ThreadBusy": "agentrt.errors",
    "ThreadMessage": "agentrt.runs.messages",
    "ToolContext": "agentrt.tools",
    "ToolError": "agentrt.tools",
    "ToolSpec": "agentrt.tools",
    "Trace": "agentrt.tracing",
    "UnknownArtifact": "agentrt.artifacts",
    "UnknownRun": "agentrt.errors",
    "Usage": "agentrt.state",
    "as_tool": "agentrt.tools",
    "build_run_graph": "agentrt.graphs",
    "memory_tools": "agentrt.tools.memory_tools",
    "run_python": "agentrt.tools.sandbox",
    "tool": "agentrt.tools",
}


def __getattr__(name: str) -> Any:
    try:
        source = _SOURCES[name]
    except KeyError:
        raise AttributeError(f"module 'agentrt' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(source), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
