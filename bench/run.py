"""Entry point of `make bench`: describe the machine, run every benchmark, record the results.

Each benchmark is a module beside this file with a ``main() -> str`` that prints its results
and returns them as markdown. This script prints the machine first, then writes the machine
and every benchmark's markdown into README.md, between the results markers.

Run as ``.venv/bin/python bench/run.py`` (Python puts this directory on sys.path, which is
how the benchmark modules are imported).
"""

from __future__ import annotations

import os
import platform
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import approvals
import policy
import storage
import tracing

__all__ = ["BENCHMARKS", "machine", "main", "write_results"]

BENCHMARKS: tuple[tuple[str, Callable[[], str]], ...] = (
    ("storage", storage.main),
    ("approvals", approvals.main),
    ("policy", policy.main),
    ("tracing", tracing.main),
)
"""Every benchmark, in the order they run; add a new module's main here."""

README = Path(__file__).with_name("README.md")
START_MARKER = "<!-- results:start -->"
END_MARKER = "<!-- results:end -->"


def machine() -> list[tuple[str, str]]:
    """What the numbers were measured on, as (what, value) pairs."""
    return [
        ("platform", platform.platform()),
        ("python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("cpus", str(os.cpu_count())),
        ("langgraph", version("langgraph")),
        ("langgraph-checkpoint-sqlite", version("langgraph-checkpoint-sqlite")),
        ("agentrt", version("agentrt")),
        ("sqlite", sqlite3.sqlite_version),
    ]


def write_results(markdown: str, readme: Path = README) -> None:
    """Replace what is between the results markers of ``readme`` with ``markdown``."""
    text = readme.read_text(encoding="utf-8")
    head, start, rest = text.partition(START_MARKER)
    _, end, tail = rest.partition(END_MARKER)
    if not start or not end:
        raise SystemExit(f"{readme} lacks the markers {START_MARKER} ... {END_MARKER}")
    readme.write_text(f"{head}{start}\n{markdown}\n{end}{tail}", encoding="utf-8")


def main() -> None:
    """Run all benchmarks and record their results in README.md."""
    info = machine()
    print("machine:")
    for key, value in info:
        print(f"  {key}: {value}")
    print(flush=True)

    started = time.perf_counter()
    sections = []
    for name, bench in BENCHMARKS:
        print(f"== {name}", flush=True)
        sections.append(bench())
        print()
    elapsed = time.perf_counter() - started
    print(f"all benchmarks took {elapsed:.1f} s")

    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine_md = [
        f"Measured {when} by `make bench` ({elapsed:.0f} s in all) on:",
        "",
        "| | |",
        "|---|---|",
        *(f"| {key} | {value} |" for key, value in info),
    ]
    write_results("\n\n".join(["\n".join(machine_md), *sections]))
    print(f"results written to {README}")


if __name__ == "__main__":
    main()
