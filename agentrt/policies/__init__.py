"""Policies: rules in YAML or Python, evaluated before every action."""

from agentrt.policies.engine import Policy, PolicyDecision
from agentrt.policies.loader import PolicyFileError
from agentrt.policies.model import ApprovalSpec, Match, Rule

__all__ = ["ApprovalSpec", "Match", "Policy", "PolicyDecision", "PolicyFileError", "Rule"]
