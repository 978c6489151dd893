"""Tracing benchmark: per-step cost of a run with tracing on, against the same run with it off.

A step is one model turn that calls one read tool: four checkpointed supersteps (plan,
policy, tool, verify), the same shape as the storage benchmark. The anchor is agentrt with
``tracing=None`` (OpenTelemetry's no-op tracer, so the span helpers still run but record
nothing), measured in the same process, alternating with the traced runs so that machine
noise hits both alike. Traced runs use the default SQLite span store (eight spans a step:
agent.step x4, llm.call, policy.check, tool.call, plus the run span), with content capture
off (the default) and on (every prompt, argument and result through the Redactor).

Each configuration runs ROUNDS times on fresh files; the median seconds per step is
reported, and the ratio of each traced median to the untraced one.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from harness import QUICK

from agentrt import AgentRuntime, Budget, Policy, Principal, tool
from agentrt.testing import ScriptedChatModel, ai, tool_call

__all__ = ["CONFIGS", "ROUNDS", "STEPS", "main", "seconds_per_step"]

STEPS = 5 if QUICK else 60
"""Steps per run."""
ROUNDS = 1 if QUICK else 7
"""Runs per configuration; the median is reported."""
CONFIGS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("off (tracing=None)", {"tracing": None}),
    ("sqlite span store", {"tracing": "sqlite"}),
    ("sqlite + capture_content", {"tracing": "sqlite", "capture_content": True}),
)
"""The anchor first, then the traced configurations."""


@tool(effect="read")
def lookup(i: int) -> dict[str, Any]:
    """Return a small record.

    Args:
        i: The step number, echoed back.
    """
    return {"i": i, "email": f"user{i}@example.com", "ok": True}


def seconds_per_step(db: Path, steps: int, **kwargs: Any) -> float:
    """Wall seconds per step of one ``steps``-step run on ``db``."""
    script = [ai("", tool_call("lookup", {"i": i})) for i in range(steps)] + ["done"]
    with AgentRuntime(
        ScriptedChatModel(script),
        tools=[lookup],
        policy=Policy.allow_all(),
        db=db,
        budget=Budget(max_steps=steps + 1),
        **kwargs,
    ) as rt:
        started = time.perf_counter()
        run = rt.start("benchmark", principal=Principal("bench"))
        elapsed = time.perf_counter() - started
    assert run.status == "succeeded", run.error
    return elapsed / steps


def main() -> str:
    """Run the benchmark, print it, and return it as markdown."""
    times: dict[str, list[float]] = {name: [] for name, _ in CONFIGS}
    with tempfile.TemporaryDirectory(prefix="agentrt-bench-") as tmp:
        for round_ in range(ROUNDS):
            for name, kwargs in CONFIGS:
                db = Path(tmp) / f"{round_}-{len(times[name])}-{name[:6]}.db"
                times[name].append(seconds_per_step(db, STEPS, **kwargs))
    base = statistics.median(times[CONFIGS[0][0]])
    rows = []
    for name, _ in CONFIGS:
        median = statistics.median(times[name])
        rows.append((name, median * 1000, median / base))
    print(f"{STEPS}-step runs, median of {ROUNDS}, anchor: the same run with tracing=None")
    for name, ms, ratio in rows:
        print(f"  {name:<26} {ms:7.2f} ms/step   x{ratio:.2f}")
    lines = [
        "### tracing",
        "",
        f"{STEPS}-step runs (model turn + read tool each), median of {ROUNDS} runs; "
        "ratio against the same run with `tracing=None`, measured in the same process.",
        "",
        "| tracing | ms/step | ratio to off |",
        "|---|---|---|",
        *(f"| {name} | {ms:.2f} | x{ratio:.2f} |" for name, ms, ratio in rows),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
