"""A tool call that kills its process is not started forever: after it died twice with its
process, a person is asked (as for an effect in doubt) before it starts again."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from agentrt import Decision, RunStatus
from tests.killer_app import CLERK, build_runtime, calls

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.subprocess


def in_process(db: Path, code: str) -> subprocess.CompletedProcess[str]:
    script = (
        "import sys\nfrom tests.killer_app import build_runtime, OPS\n"
        f"rt = build_runtime(sys.argv[1])\n{code}\n"
    )
    return subprocess.run(
        [sys.executable, "-c", script, str(db)],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_a_call_that_killed_its_process_twice_goes_to_a_person(db: Path) -> None:
    first = in_process(db, "rt.start('crunch j1', principal=OPS, thread_id='t')")
    assert first.returncode == -signal.SIGKILL
    again = in_process(db, "rt.resume('t')")
    assert again.returncode == -signal.SIGKILL
    assert calls(db) == 2

    third = in_process(db, "print(rt.resume('t').status)")
    assert (third.returncode, third.stdout.strip()) == (0, "awaiting_approval"), third.stderr
    assert calls(db) == 2  # not started a third time

    with build_runtime(db) as rt:
        run = rt.get("t")
        request = run.pending_approval
        assert request is not None
        assert (request.kind, request.tool) == ("reconcile", "crunch")
        assert request.reason.startswith(
            "'crunch' was started 2 times and its process died each time before the call "
            "returned; it may be what kills the process"
        )
        # Settled by a person: it happened, with this result. The run goes on.
        done = rt.decide(Decision.resolve(request.id, result={"job": "j1"}, by=CLERK))
    assert done.status is RunStatus.SUCCEEDED
    assert calls(db) == 2


def test_a_crash_loop_a_person_settled_replays_identical(db: Path) -> None:
    """The replay cannot die as the run's process did: its ledger holds the attempts that
    died, so today's ledger asks a person at the same step, as the run's did on resume."""
    assert in_process(db, "rt.start('crunch j1', principal=OPS, thread_id='t')").returncode == (
        -signal.SIGKILL
    )
    assert in_process(db, "rt.resume('t')").returncode == -signal.SIGKILL
    third = in_process(db, "print(rt.resume('t').status)")
    assert third.stdout.strip() == "awaiting_approval", third.stderr

    with build_runtime(db) as rt:
        # Waiting at the gate: the replay waits there too (nothing called, no retry).
        assert str(rt.replay("t")) == "identical"
        request = rt.get("t").pending_approval
        assert request is not None
        done = rt.decide(Decision.resolve(request.id, result={"job": "j1"}, by=CLERK))
        assert done.status is RunStatus.SUCCEEDED
        assert str(rt.replay("t")) == "identical"
    assert calls(db) == 2  # the replays killed nothing
