"""Human gates across real processes: a gate outlives its process and a redeploy and is
decided days later; two processes deciding one request at once, exactly one wins."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agentrt import ApprovalStatus, RunStatus
from tests.gate_app import GOAL, OPS, T0, build_runtime, paid
from tests.test_runtime import summary

ROOT = Path(__file__).resolve().parent.parent
AGENTRT = [sys.executable, "-m", "agentrt"]
V1 = ["--app", "tests.gate_app:build_runtime"]
V2 = ["--app", "tests.gate_app_v2:build_runtime"]
DAY = 86400.0

pytestmark = pytest.mark.subprocess


def run_at(now: float, args: list[str]) -> subprocess.CompletedProcess[str]:
    """Run a command in a fresh process whose app clock reads ``now``."""
    return subprocess.run(
        args,
        cwd=ROOT,
        env={**os.environ, "GATE_APP_NOW": str(now)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


START = (
    "import sys, json\n"
    "from tests.gate_app import build_runtime, GOAL, OPS\n"
    "run = build_runtime(sys.argv[1]).start(GOAL, principal=OPS, thread_id='t-gate')\n"
    "print(json.dumps([r.id for r in run.pending_approvals]))\n"
)


def test_a_gate_outlives_its_process_and_a_redeploy_and_is_decided_days_later(
    tmp_path: Path,
) -> None:
    db = str(tmp_path / "agentrt.db")
    started = run_at(T0, [sys.executable, "-c", START, db])
    assert started.returncode == 0, started.stderr
    al, cy = json.loads(started.stdout)

    # Five days later, another process runs the redeployed app (same tools, new planner).
    later = T0 + 5 * DAY
    queue = run_at(later, [*AGENTRT, "approvals", *V2, "--db", db])
    assert queue.returncode == 0, queue.stderr
    header, *rows = queue.stdout.splitlines()
    assert header.split() == ["ID", "AGE", "TOOL", "ARGS", "RULE", "ROLE", "THREAD"]
    assert sorted(row.split()[:3] for row in rows) == sorted([[al, "5d", "pay"], [cy, "5d", "pay"]])
    assert all('"card": "[REDACTED:field]"' in row and "4111-1111" not in row for row in rows)

    who = ["--as", "bob", "--role", "payer", "--tenant", "acme", *V2, "--db", db]
    approved = run_at(later, [*AGENTRT, "approve", al, *who])
    assert approved.returncode == 0, approved.stderr
    assert "the run is now awaiting_approval" in approved.stdout  # cy is still undecided
    edit = json.dumps({"who": "cy", "cents": 700, "card": "4333-3333"})
    edited = run_at(later + 3600, [*AGENTRT, "edit", cy, "--args", edit, *who])
    assert edited.returncode == 0, edited.stderr
    assert "the run is now succeeded" in edited.stdout
    assert "output    v2 settled: pay:success pay:success pay:success" in edited.stdout

    with build_runtime(db) as rt:
        run = rt.get("t-gate")
        assert run.status is RunStatus.SUCCEEDED
        assert run.usage["waited_seconds"] == 5 * DAY + 3600
        assert run.usage["active_seconds"] < 60
        assert summary(rt, "t-gate")[-5:] == [
            ("approval", "0.2", "edited", "bob"),
            ("policy", "0.2", "allow", "small-payments"),
            ("observed", "0.2", "pay", "ok"),
            ("answer", "v2 settled: pay:success pay:success pay:success"),
            ("finish", "succeeded"),
        ]
    assert paid(db) == [("al", 5000), ("bo", 200), ("cy", 700)]


RACER = (
    "import sys, json\n"
    "from agentrt import AlreadyDecided, Decision, Principal\n"
    "from tests.gate_app import build_runtime\n"
    "rt = build_runtime(sys.argv[1])\n"
    "me = Principal(sys.argv[3], roles=['payer'], tenant='acme')\n"
    "print('READY', flush=True)\n"
    "sys.stdin.readline()\n"
    "try:\n"
    "    run = rt.decide(Decision.approve(sys.argv[2], by=me))\n"
    "    print(json.dumps({'won': sys.argv[3], 'status': run.status}))\n"
    "except AlreadyDecided as exc:\n"
    "    print(json.dumps({'lost': sys.argv[3], 'error': str(exc)}))\n"
)


def test_two_processes_deciding_one_request_at_once_exactly_one_wins(tmp_path: Path) -> None:
    db = str(tmp_path / "agentrt.db")
    with build_runtime(db, clock=lambda: T0) as rt:
        al = rt.start(GOAL, principal=OPS).pending_approvals[0].id

    racers = [
        subprocess.Popen(
            [sys.executable, "-c", RACER, db, al, name],
            cwd=ROOT,
            env={**os.environ, "GATE_APP_NOW": str(T0 + 3600)},
            text=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for name in ("bob", "carol")
    ]
    for racer in racers:
        assert racer.stdout is not None
        assert racer.stdout.readline() == "READY\n"
    for racer in racers:  # both are loaded and waiting: release them together
        assert racer.stdin is not None
        racer.stdin.write("go\n")
        racer.stdin.flush()
    results = []
    for racer in racers:
        out, err = racer.communicate(timeout=60)
        assert racer.returncode == 0, err
        results.append(json.loads(out))

    winners = [r["won"] for r in results if "won" in r]
    losers = [r for r in results if "lost" in r]
    assert len(winners) == 1
    assert len(losers) == 1
    assert f"approval {al!r} was" in losers[0]["error"]
    assert "by " + repr(winners[0]) in losers[0]["error"]
    with build_runtime(db) as rt:
        record = rt.approval(al)
        assert (record.status, record.decided_by) == (ApprovalStatus.APPROVED, winners[0])
        assert rt.get(record.thread_id).status is RunStatus.AWAITING_APPROVAL  # cy still waits
    assert paid(db) == []
