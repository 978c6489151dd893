"""A serving process's collector: start-up frozen, collections further apart."""

from __future__ import annotations

import subprocess
import sys

from agentrt.collector import THRESHOLDS


def test_tuning_freezes_what_start_up_made_and_raises_the_thresholds() -> None:
    # In a process of its own: the test process keeps its collector as it is.
    probe = (
        "import gc; from agentrt.collector import tune_for_serving; "
        "import agentrt.runtime; before = gc.get_threshold(); tune_for_serving(); "
        "print(before, gc.get_threshold(), gc.get_freeze_count(), sep='\\n')"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out[0] == "(700, 10, 10)"  # CPython's own, as the process started
    assert out[1] == str(THRESHOLDS)
    assert int(out[2]) > 100_000  # the runtime's modules and classes: frozen, never walked
