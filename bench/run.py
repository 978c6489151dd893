"""Entry point of `make bench`: describe the machine, run every benchmark, record the results.

Each benchmark is a module beside this file whose ``main()`` returns its result rows (see
harness.py: a list of ``Row``, a ``Report`` with notes, or markdown). Add one by listing
its module name in ``BENCHMARKS``.

    .venv/bin/python bench/run.py              # all of them; rewrites README.md's results
    .venv/bin/python bench/run.py resume       # only some; prints, leaves README.md alone
    BENCH_QUICK=1 .venv/bin/python bench/run.py  # smoke test: tiny sizes, README untouched

Python puts this directory on sys.path, which is how the modules are imported. Each
benchmark runs in an interpreter of its own (``run_apart``), so none is measured in what an
earlier one left in memory.
"""

from __future__ import annotations

import importlib
import pickle
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness import QUICK, Report, Row, machine, render_rows

__all__ = ["BENCHMARKS", "collect", "main", "run_apart", "run_one", "write_results"]

BENCHMARKS: tuple[str, ...] = (
    "overhead",
    "concurrency",
    "resume",
    "storage",
    "policy",
    "approvals",
    "tracing",
    "service",
    "provider",
    "workers",
    "stats",
)
"""Every benchmark module, in the order they run; one line each."""

README = Path(__file__).with_name("README.md")
START_MARKER = "<!-- results:start -->"
END_MARKER = "<!-- results:end -->"


def run_one(name: str) -> Report:
    """Import benchmark ``name``, run its main() and normalise what it returns."""
    module = importlib.import_module(name)
    result: Any = module.main()
    if isinstance(result, Report):
        return result
    if isinstance(result, str):
        return Report(rows=[], notes=result)
    rows = list(result)
    if not all(isinstance(r, Row) for r in rows):
        raise TypeError(f"bench module {name!r}: main() must return Rows, a Report or markdown")
    return Report(rows=rows)


REPORT_TO = "--report-to"
"""``run.py --report-to FILE NAME``: run benchmark NAME here and pickle its Report into FILE
(how ``run_apart`` runs one)."""


def run_apart(name: str) -> Report:
    """Run benchmark ``name`` in a fresh interpreter of this one's, and return its report.

    A benchmark run after another in the same process is measured in what the first left
    behind. LangChain keeps the functions of the last 256 RunnableLambdas in a cache, and
    with them, through their closures, the per-action anchor's models and every message
    those recorded: about 760,000 objects after the overhead benchmark. Each full garbage
    collection of the concurrency benchmark then walked them. That cost agentrt, whose
    runs collect more often, more than the anchor: its row read 0.82 run after the overhead
    benchmark, 0.92 run alone. A user's process holds none of that.
    """
    with tempfile.TemporaryDirectory(prefix="agentrt-bench-report-") as tmp:
        out = Path(tmp, "report.pickle")
        here = str(Path(__file__).resolve())
        subprocess.run([sys.executable, here, REPORT_TO, str(out), name], check=True)
        report: Report = pickle.loads(out.read_bytes())
        return report


def collect(names: Sequence[str]) -> tuple[list[Row], list[tuple[str, str]]]:
    """Run the named benchmarks, each in a process of its own; every row, and each
    module's notes by name."""
    rows: list[Row] = []
    notes: list[tuple[str, str]] = []
    for name in names:
        print(f"== {name}", flush=True)
        started = time.perf_counter()
        report = run_apart(name)
        for r in report.rows:
            print(
                f"  {r.bench}, {r.measure}: agentrt {r.agentrt.show()}, "
                f"anchor {r.anchor.show()}, ratio {r.ratio.show()}"
            )
        print(f"   ({time.perf_counter() - started:.1f} s)", flush=True)
        rows += report.rows
        if report.notes:
            notes.append((name, report.notes))
    return rows, notes


def write_results(markdown: str, readme: Path = README) -> None:
    """Replace what is between the results markers of ``readme`` with ``markdown``."""
    text = readme.read_text(encoding="utf-8")
    head, start, rest = text.partition(START_MARKER)
    _, end, tail = rest.partition(END_MARKER)
    if not start or not end:
        raise SystemExit(f"{readme} lacks the markers {START_MARKER} ... {END_MARKER}")
    readme.write_text(f"{head}{start}\n{markdown}\n{end}{tail}", encoding="utf-8")


def main(argv: Sequence[str] = ()) -> None:
    """Run the benchmarks named in ``argv`` (all if none); record a full run in README.md."""
    if list(argv[:1]) == [REPORT_TO]:
        _, out, name = argv
        Path(out).write_bytes(pickle.dumps(run_one(name)))
        return
    unknown = [n for n in argv if n not in BENCHMARKS]
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {unknown!r}; choose from {list(BENCHMARKS)!r}")
    names = list(argv) or list(BENCHMARKS)
    info = machine()
    print("machine:")
    for key, value in info:
        print(f"  {key}: {value}")
    print(flush=True)

    started = time.perf_counter()
    rows, notes = collect(names)
    elapsed = time.perf_counter() - started
    table = render_rows(rows)
    print()
    print("\n".join(table))
    print(f"\nall benchmarks took {elapsed:.1f} s")

    if QUICK or names != list(BENCHMARKS):
        print("quick mode or a subset: README.md left as it was")
        return
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    sections = [
        f"Measured {when} by `make bench` ({elapsed:.0f} s in all) on:",
        "\n".join(["| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in info)]),
        "Every ratio is agentrt / anchor from samples taken in the same run, interleaved: "
        "median over the pairs, then (min-max, number of pairs). Values are median "
        "(min-max).",
        "\n".join(table),
        # Notes that bring their own headings keep them; others get the module's name.
        *(text if text.startswith("#") else f"### {name}\n\n{text}" for name, text in notes),
    ]
    write_results("\n\n".join(sections))
    print(f"results written to {README}")


if __name__ == "__main__":
    main(sys.argv[1:])
