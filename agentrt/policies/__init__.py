"""Policies: rules in YAML or Python, evaluated before every action."""

from agentrt.policies.engine import Explanation, Policy, PolicyDecision, RuleCheck
from agentrt.policies.loader import PolicyFileError
from agentrt.policies.model import ApprovalSpec, Match, Rule

__all__ = [
    "ApprovalSpec",
    "Explanation",
    "Match",
    "Policy",
    "PolicyDecision",
    "PolicyFileError",
    "Rule",
    "RuleCheck",
]
