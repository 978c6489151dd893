"""A run SIGKILLed in the middle keeps its usage when another process resumes it: no fresh
budget, and the limit counts what both processes spent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from agentrt import Budget, Principal, RunStatus
from agentrt.state import Usage
from tests import budget_app

ROOT = Path(__file__).resolve().parent.parent
OPS = Principal("ops", tenant="acme")
LIMIT = 6

pytestmark = pytest.mark.subprocess


def spent(usage: Usage) -> dict[str, float]:
    """Usage without active time, which the real clock makes vary from run to run."""
    return {k: v for k, v in usage.items() if k != "active_seconds"}


def test_a_killed_and_resumed_run_keeps_its_usage(tmp_path: Path) -> None:
    # The same run, undisturbed, in this process: what it spends in all.
    whole_db = tmp_path / "whole" / "agentrt.db"
    whole_db.parent.mkdir()
    with budget_app.build_runtime(whole_db) as rt:
        whole = rt.start("ping", principal=OPS, budget=Budget(max_tool_calls=LIMIT))
    assert whole.status is RunStatus.BUDGET_EXCEEDED
    assert budget_app.executions(whole_db) == LIMIT

    db = tmp_path / "agentrt.db"
    starter = (
        "import sys\nfrom agentrt import Budget, Principal\n"
        "from tests.budget_app import build_runtime\n"
        "build_runtime(sys.argv[1]).start('ping', principal=Principal('ops', tenant='acme'), "
        f"budget=Budget(max_tool_calls={LIMIT}), thread_id='t-kill')\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", starter, str(db)],
        cwd=ROOT,
        env={**os.environ, "AGENTRT_TEST_BLOCK_AT_TURN": "4"},
        text=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line == "BLOCKED turn 4\n", proc.stderr.read() if proc.stderr else ""
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    for stream in (proc.stdin, proc.stdout, proc.stderr):
        if stream:
            stream.close()

    with budget_app.build_runtime(db) as rt:
        # What the dead process spent is in the last checkpoint.
        before = rt.graph.get_state({"configurable": {"thread_id": "t-kill"}}).values["usage"]
        assert (before["steps"], before["tool_calls"]) == (4, 4)
        assert before["input_tokens"] > 0
        assert budget_app.executions(db) == 4
        # The runs row kept up with the spend while the process lived.
        assert spent(rt.get("t-kill").usage) == spent(before)

        run = rt.resume("t-kill")
        assert run.status is RunStatus.BUDGET_EXCEEDED
        # Only two more pings: the limit counted the four the dead process made.
        assert budget_app.executions(db) == LIMIT
        assert run.usage["tool_calls"] == LIMIT
        assert spent(run.usage) == spent(whole.usage)
        assert run.budget_report is not None
        assert spent(run.budget_report["usage"]) == spent(run.usage)
        assert rt.get("t-kill").usage == run.usage


@pytest.mark.parametrize("then", ["resume", "cancel"])
def test_active_time_a_segment_killed_inside_a_node_spent_is_not_handed_out_again(
    tmp_path: Path, then: str
) -> None:
    """The first process spends 100 s of the run's clock inside a tool (its lease renewed
    meanwhile, as every ttl / 3) and is SIGKILLed there, before the node ends; then the run
    lies dead for a night. Resumed, it counts on from the 100 s: max_active_seconds=50
    stops it before the tool is called again. Cancelled, it keeps them. The night, when
    no process held the run, counts for nothing either way."""
    db = tmp_path / "agentrt.db"
    starter = (
        "import sys\nfrom agentrt import Budget, Principal\n"
        "from tests.budget_app import build_timed_runtime\n"
        "build_timed_runtime(sys.argv[1], budget=Budget(max_active_seconds=50)).start("
        "'crunch j1', principal=Principal('ops', tenant='acme'), thread_id='t')\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", starter, str(db)],
        cwd=ROOT,
        env={**os.environ, "AGENTRT_TEST_BLOCK_IN_SPELL": "1"},
        text=True,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert line == "BLOCKED spell\n", line or (proc.stderr.read() if proc.stderr else "")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    night = 10 * 3600.0
    budget_app.clock_file(db).write_text(repr(budget_app.CLOCK_START + budget_app.SPELL + night))

    with budget_app.build_timed_runtime(db, budget=Budget(max_active_seconds=50)) as rt:
        # No checkpoint has the spell (the node never ended); the lease's renewal left it
        # on the run's row.
        before = rt.graph.get_state({"configurable": {"thread_id": "t"}}).values["usage"]
        assert before["active_seconds"] == 0.0
        row = rt.store.get_run("t")
        assert row is not None
        assert row.live_active_seconds == budget_app.SPELL
        if then == "resume":
            run = rt.resume("t")
            assert run.status is RunStatus.BUDGET_EXCEEDED, run
            assert run.budget_report is not None
            assert run.budget_report["limit"] == "max_active_seconds"
            assert budget_app.executions(db) == 1  # stopped before crunch was called again
        else:
            run = rt.cancel("t", reason="no longer needed")
            assert run.status is RunStatus.CANCELLED, run
    assert run.usage["active_seconds"] == budget_app.SPELL
