"""agentrt: a durable runtime for tool-using agents, built on LangGraph.

Plans become operations that are policy-checked, budgeted, approved by a person where a
rule says so, executed exactly once, verified and traced; a run survives its process.
"""

from agentrt.approvals import ApprovalPage, ApprovalRequest, ApprovalStatus, Decision
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
    UnknownRun,
)
from agentrt.graphs import build_run_graph
from agentrt.policies import Policy, PolicyDecision, Rule
from agentrt.principal import Principal
from agentrt.replay import ReplayReport
from agentrt.runtime import AgentRuntime, Run, Sweep
from agentrt.state import Action, Observation, ObservationKind, Plan, RunState, RunStatus, Usage
from agentrt.tools import Effect, ToolContext, ToolError, ToolSpec, as_tool, tool
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
    "Budget",
    "BudgetExceeded",
    "ConfigError",
    "Decision",
    "Effect",
    "IllegalTransition",
    "InvalidDecision",
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
    "Sweep",
    "ToolContext",
    "ToolError",
    "ToolSpec",
    "Trace",
    "UnknownRun",
    "Usage",
    "__version__",
    "as_tool",
    "build_run_graph",
    "run_python",
    "tool",
]
