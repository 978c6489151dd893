"""The benchmarks keep running: each module's quick mode, through the driver `make bench` uses.

Figures are not asserted here (timed tests are not tests); only that every benchmark
still runs end to end and reports a row against its anchor.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).parents[1] / "bench"


@pytest.mark.subprocess
@pytest.mark.timeout(300)  # every benchmark at toy size: about a minute, three on a busy machine
def test_quick_mode_runs_every_benchmark_and_leaves_the_readme() -> None:
    readme = (BENCH / "README.md").read_bytes()
    done = subprocess.run(
        [sys.executable, str(BENCH / "run.py")],
        env={**os.environ, "BENCH_QUICK": "1"},
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = re.findall(r"^\| ([\w -]+) \| .* \| \*\*(\d+\.\d+)\*\* ", done.stdout, re.M)
    assert {bench for bench, _ in rows} == {
        "per action",
        "per node",
        "concurrency",
        "resume",
        "start-up",
        "storage",
        "service",
        "provider",
        "workers",
    }
    assert all(float(ratio) > 0 for _, ratio in rows)
    assert "README.md left as it was" in done.stdout
    assert (BENCH / "README.md").read_bytes() == readme


def test_results_go_between_the_markers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCH))
    import run  # bench/run.py

    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- results:start -->\nold\n<!-- results:end -->\ntail\n")
    run.write_results("new table", readme)
    assert readme.read_text() == (
        "intro\n<!-- results:start -->\nnew table\n<!-- results:end -->\ntail\n"
    )
    readme.write_text("no markers here\n")
    with pytest.raises(SystemExit, match="lacks the markers"):
        run.write_results("x", readme)
    with pytest.raises(SystemExit, match="unknown benchmark"):
        run.main(["no-such-bench"])


def test_rows_pair_samples_into_ratios(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCH))
    from harness import Row, render_rows

    row = Row.of("per action", "ms", [2.0, 3.0, 9.0], "bare", [1.0, 1.0, 3.0])
    assert (row.ratio.median, row.ratio.low, row.ratio.high, row.ratio.n) == (3.0, 2.0, 3.0, 3)
    assert (row.agentrt.median, row.anchor.median) == (3.0, 1.0)
    assert (
        "| per action | ms | 3 (2-9) | bare | 1 (1-3) | **3.00** (2.00-3.00, n=3) |"
        in (render_rows([row])[2])
    )
    with pytest.raises(ValueError, match="unpaired"):
        Row.of("x", "y", [1.0], "z", [1.0, 2.0])


@pytest.mark.subprocess
def test_each_benchmark_runs_in_a_process_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What one benchmark leaves in memory is not there when the next is measured."""
    monkeypatch.syspath_prepend(str(BENCH))
    import run  # bench/run.py
    from harness import Report

    (tmp_path / "leaves.py").write_text(
        "import os, sys\n"
        "from harness import Report\n"
        "def main():\n"
        "    left = getattr(sys, 'left_by_a_benchmark', 0)\n"
        "    sys.left_by_a_benchmark = left + 1\n"
        "    return Report(rows=[], extra={'pid': os.getpid(), 'left': left})\n"
    )
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), str(BENCH)]))
    first, second = run.run_apart("leaves"), run.run_apart("leaves")
    assert isinstance(first, Report)
    assert first.extra["left"] == second.extra["left"] == 0
    assert len({first.extra["pid"], second.extra["pid"], os.getpid()}) == 3
