"""The run graph's nodes, one a file: plan, policy, approval, tool, verify, commit, finish."""

from agentrt.nodes.approval import approval
from agentrt.nodes.commit import commit
from agentrt.nodes.finish import finish
from agentrt.nodes.plan import plan
from agentrt.nodes.policy import policy
from agentrt.nodes.tool import tool
from agentrt.nodes.verify import verify

__all__ = ["approval", "commit", "finish", "plan", "policy", "tool", "verify"]
