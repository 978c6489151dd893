"""The run graph's nodes, one a file.

plan, policy, approval, tool, verify, commit, reconcile, finish, and budget_gate.
"""

from agentrt.nodes.approval import approval
from agentrt.nodes.budget_gate import budget_gate
from agentrt.nodes.commit import commit
from agentrt.nodes.finish import finish
from agentrt.nodes.plan import aplan, plan
from agentrt.nodes.policy import policy
from agentrt.nodes.reconcile import reconcile
from agentrt.nodes.tool import tool
from agentrt.nodes.verify import verify

__all__ = [
    "aplan",
    "approval",
    "budget_gate",
    "commit",
    "finish",
    "plan",
    "policy",
    "reconcile",
    "tool",
    "verify",
]
