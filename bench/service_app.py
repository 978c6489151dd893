"""The app the service benchmark serves: tool-using runs whose model takes time to answer.

`agentrt serve --app service_app:build_runtime` (run from bench/) serves it over HTTP, and
the benchmark's in-process baseline builds the same runtime with ``build_runtime(db)``.
Each run makes ACTIONS model turns that call the no-op read tool (no approval under
``Policy.allow_all``), then a final answer; every model call takes LATENCY seconds.
BENCH_QUICK=1, inherited by the server process, shrinks both.
"""

from __future__ import annotations

from pathlib import Path

from agents import agentrt_runtime, script
from harness import QUICK

from agentrt import AgentRuntime, Principal
from agentrt.testing import ScriptedChatModel

__all__ = ["ACTIONS", "LATENCY", "PRINCIPAL", "build_runtime"]

ACTIONS = 1 if QUICK else 2
"""Tool calls a run makes before its final answer."""
LATENCY = 0.002 if QUICK else 0.05
"""Seconds each model call takes."""
PRINCIPAL = Principal("bench", tenant="bench")
"""Who starts the runs: the API key acts as this principal, as does the baseline."""


def build_runtime(db: str | Path = "service-bench.db") -> AgentRuntime:
    """The benchmark's runtime on ``db``: the no-op tool, allow-all, a slow scripted model."""
    # The database as given: a postgresql:// URL is no path.
    return agentrt_runtime(ScriptedChatModel(script(ACTIONS), latency=LATENCY), db, ACTIONS)
