"""Example apps built on agentrt."""
