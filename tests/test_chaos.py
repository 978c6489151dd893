"""Crash chaos in the test suite: real SIGKILLs at seeded points, then resume to the end.

tests/chaos_app.py holds the workflow and the driver; `make chaos` runs it for 500+ kills.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.subprocess


def test_eighty_sigkills_lose_nothing_and_repeat_nothing(tmp_path: Path) -> None:
    # 80 kills with this seed reach each window below several times (50 reached one of
    # them once, which a loaded machine's timing could take away). The kill points are
    # counted, so which windows a seed reaches moves when the writes a run makes do.
    args = ["--min-kills", "80", "--seed", "5", "--dir", str(tmp_path)]
    done = subprocess.run(
        [sys.executable, "-m", "tests.chaos_app", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["failures"] == [], done.stderr[-3000:]
    assert done.returncode == 0
    assert report["kills"] >= 80
    assert (report["duplicates"], report["lost"]) == (0, 0)
    # The seed reaches each kind of window: non-idempotent calls in doubt settled both ways
    # by a person, and idempotent calls made again with the same key.
    assert report["resolved"] >= 1
    assert report["retried"] >= 1
    assert report["idempotent_recalls"] >= 1
    assert report["reconciles"] == report["resolved"] + report["retried"]


def test_workers_killed_at_random_on_postgres_lose_nothing_and_repeat_nothing(
    postgres_url: str, tmp_path: Path
) -> None:
    """The small version of `make chaos CHAOS_MODE=postgres` (tests/chaos_workers.py)."""
    args = ["--db", postgres_url, "--runs", "24", "--min-kills", "8", "--seed", "3"]
    done = subprocess.run(
        [sys.executable, "-m", "tests.chaos_workers", *args, "--dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["failures"] == [], done.stderr[-3000:]
    assert done.returncode == 0
    assert report["kills"] >= 8
    assert report["workers_started"] == 3 + report["kills"]
    assert (report["duplicates"], report["lost"]) == (0, 0)
    assert report["reconciles"] == report["resolved"] + report["retried"]
