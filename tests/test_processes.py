"""Real processes: a run stopped at a gate is finished by another process; a run whose
process is SIGKILLed inside a node is resumed from its thread id and finishes."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from agentrt import RunBusy
from tests.crashy_app import blocked_at, build_runtime, sink_path

ROOT = Path(__file__).resolve().parent.parent
AGENTRT = [sys.executable, "-m", "agentrt"]
DEMO = ["--app", "agentrt.examples.refund_desk:build_runtime"]
CRASHY = ["--app", "tests.crashy_app:build_runtime"]

pytestmark = pytest.mark.subprocess


def run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False, **kwargs
    )


def test_a_second_process_that_knows_only_db_and_thread_finishes_the_run(tmp_path: Path) -> None:
    db = tmp_path / "agentrt.db"
    first = run([*AGENTRT, "demo", "--db", str(db)], stdin=subprocess.DEVNULL)
    assert first.returncode == 0, first.stderr
    assert "status    awaiting_approval" in first.stdout
    thread_id = next(
        line.split()[1] for line in first.stdout.splitlines() if line.startswith("thread ")
    )

    second = run(
        [
            sys.executable,
            "-c",
            (
                "import sys, json\n"
                "from agentrt import Decision, Principal\n"
                "from agentrt.examples.refund_desk import build_runtime\n"
                "rt = build_runtime(sys.argv[1])\n"
                "req = rt.get(sys.argv[2]).pending_approval\n"
                "bob = Principal('bob', roles=['refund-approver'], tenant='acme')\n"
                "run = rt.decide(Decision.approve(req.id, by=bob))\n"
                "print(json.dumps({'status': run.status, 'output': run.output}))\n"
            ),
            str(db),
            thread_id,
        ],
    )
    assert second.returncode == 0, second.stderr
    result = json.loads(second.stdout)
    assert result["status"] == "succeeded"
    assert result["output"].startswith("Refunded $89.00")

    shown = run([*AGENTRT, "show", thread_id, *DEMO, "--db", str(db)])
    assert shown.returncode == 0, shown.stderr
    assert "status    succeeded" in shown.stdout
    assert "approval 2.0: issue_refund approved by bob" in shown.stdout


def charges(db: Path) -> tuple[list[tuple[str, int]], int]:
    with sqlite3.connect(sink_path(db)) as conn:
        rows = conn.execute("SELECT who, cents FROM charges ORDER BY who").fetchall()
        calls = conn.execute("SELECT count(*) FROM calls").fetchone()[0]
    return rows, calls


@pytest.mark.parametrize(
    ("where", "tool_calls", "asks"),
    [
        ("model", 1, 2),  # killed while the model was answering turn 2: asked again
        # killed after turn 2's answer was recorded, before its checkpoint: not asked again
        ("answered", 1, 1),
        # killed while policy decided on turn 2's first action: only that decision is lost
        ("deciding", 1, 1),
        ("tool", 2, 1),  # killed inside the first charge: called again with the same key
        ("verify", 1, 1),  # killed after the charge was recorded: the ledger answers, no call
    ],
)
def test_sigkill_inside_a_node_then_resume(
    tmp_path: Path, where: str, tool_calls: int, asks: int
) -> None:
    db = tmp_path / "agentrt.db"
    # While its process lives, nobody else may drive the run.
    with (
        blocked_at(db, where),
        build_runtime(db) as rt,
        pytest.raises(RunBusy, match="'t-crash' is being driven by"),
    ):
        rt.resume("t-crash")

    with sqlite3.connect(db) as conn:
        status, owner = conn.execute(
            "SELECT status, lease_owner FROM runs WHERE thread_id='t-crash'"
        ).fetchone()
    assert status == "running"
    assert owner is not None  # the dead process still holds its lease...

    # ...which a process on the same host takes over at once, seeing the owner is dead.
    resumed = run([*AGENTRT, "resume", "t-crash", *CRASHY, "--db", str(db)])
    assert resumed.returncode == 0, resumed.stderr
    assert "status    succeeded" in resumed.stdout
    assert "output    charged three" in resumed.stdout

    rows, calls = charges(db)
    assert rows == [("al", 100), ("bo", 200), ("cy", 300)]  # each effect exactly once
    assert calls == tool_calls + 2  # bo and cy were charged once each after the resume
    with sqlite3.connect(sink_path(db)) as conn:
        assert conn.execute("SELECT count(*) FROM asks").fetchone() == (asks,)
