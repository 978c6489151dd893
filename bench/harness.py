"""What every benchmark shares: the machine, quick mode, paired repeats and result rows.

A benchmark module here has a ``main()`` that returns its result rows (a list of ``Row``),
or a ``Report`` (rows plus notes in markdown), or only markdown. ``bench/run.py`` lists the
modules, runs them, and writes every row into one table in README.md.

Every figure is a ratio against an anchor measured in the same run, because the machine
is shared and absolute times move with its load. ``paired`` interleaves the two sides
(alternating which goes first) so drift in load hits both, and reports medians with min
and max.
"""

from __future__ import annotations

import logging
import os
import platform
import re
import sqlite3
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import version

__all__ = [
    "QUICK",
    "Complaints",
    "Report",
    "Row",
    "Spread",
    "machine",
    "num",
    "paired",
    "ratio",
    "render_rows",
    "timed",
]

QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")
"""BENCH_QUICK=1: tiny sizes and few repeats, a smoke test that the benchmarks still run."""


@dataclass(frozen=True, slots=True)
class Spread:
    """Median, min and max of repeated measurements of one figure."""

    median: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        if not values:
            raise ValueError("a spread needs at least one value")
        return cls(statistics.median(values), min(values), max(values), len(values))

    def show(self) -> str:
        """``median (min-max)``, or the one value if there is only one."""
        if self.n == 1 or self.low == self.high:
            return num(self.median)
        return f"{num(self.median)} ({num(self.low)}-{num(self.high)})"


def ratio(x: float) -> str:
    """A ratio: two decimals, or two significant digits below 0.1."""
    return f"{x:.2f}" if x >= 0.1 else f"{x:.2g}"


def num(x: float) -> str:
    """A figure with as many digits as a noisy measurement deserves."""
    if abs(x) >= 100:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.3g}"


@dataclass(frozen=True, slots=True)
class Row:
    """One figure: agentrt against its anchor, and their ratio, all from the same run."""

    bench: str
    """Which benchmark, e.g. "per action"."""
    measure: str
    """What is measured and in what unit, e.g. "ms per action (20-action run)"."""
    agentrt: Spread
    anchor_name: str
    """What agentrt is compared with, e.g. "bare LangGraph: model node + ToolNode"."""
    anchor: Spread
    ratio: Spread
    """agentrt / anchor, one value per paired repeat (or of the medians, see ``of``)."""
    better: str = "lower"
    """Which way is better for this measure: "lower" (times, bytes) or "higher" (rates)."""

    @classmethod
    def of(
        cls,
        bench: str,
        measure: str,
        agentrt: Sequence[float],
        anchor_name: str,
        anchor: Sequence[float],
        *,
        better: str = "lower",
    ) -> Row:
        """A row from paired samples: the ratio spread is taken over the pairs."""
        if len(agentrt) != len(anchor):
            raise ValueError(f"unpaired samples: {len(agentrt)} vs {len(anchor)}")
        ratios = [a / b for a, b in zip(agentrt, anchor, strict=True)]
        return cls(
            bench,
            measure,
            Spread.of(agentrt),
            anchor_name,
            Spread.of(anchor),
            Spread.of(ratios),
            better,
        )


@dataclass(frozen=True, slots=True)
class Report:
    """What a benchmark returns when it has more to say than its rows."""

    rows: list[Row]
    notes: str = ""
    """Markdown written under the results table: how to read the figures, breakdowns."""
    extra: dict[str, float] = field(default_factory=dict)
    """Named numbers for tests and notes that are not a comparison."""


def machine() -> list[tuple[str, str]]:
    """What the numbers were measured on, as (what, value) pairs."""
    return [
        ("cpu", _cpu_model()),
        ("cpus", str(os.cpu_count())),
        ("load average (1, 5, 15 min) at start", ", ".join(f"{x:.2f}" for x in os.getloadavg())),
        ("platform", platform.platform()),
        ("python", f"{platform.python_implementation()} {platform.python_version()}"),
        ("langgraph", version("langgraph")),
        ("langgraph-checkpoint-sqlite", version("langgraph-checkpoint-sqlite")),
        ("langchain-core", version("langchain-core")),
        ("agentrt", version("agentrt")),
        ("sqlite", sqlite3.sqlite_version),
    ]


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def timed(fn: Callable[[], object]) -> float:
    """Seconds ``fn()`` takes on the wall clock."""
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def paired(
    ours: Callable[[], float],
    anchor: Callable[[], float],
    repeats: int,
    *,
    warmup: int = 1,
) -> tuple[list[float], list[float]]:
    """Run both sides ``repeats`` times, interleaved, after ``warmup`` unrecorded rounds.

    Each callable runs one sample and returns its figure. The order alternates each
    round, so neither side always runs on a warmer (or busier) machine.
    """
    for _ in range(warmup):
        ours()
        anchor()
    a: list[float] = []
    b: list[float] = []
    for i in range(repeats):
        if i % 2:
            b.append(anchor())
            a.append(ours())
        else:
            a.append(ours())
            b.append(anchor())
    return a, b


def render_rows(rows: Sequence[Row]) -> list[str]:
    """The rows as one markdown table."""
    lines = [
        "| benchmark | measure | agentrt | anchor | anchor value | agentrt / anchor | better |",
        "|---|---|---:|---|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.bench} | {r.measure} | {r.agentrt.show()} | {r.anchor_name} "
            f"| {r.anchor.show()} | **{ratio(r.ratio.median)}** "
            f"({ratio(r.ratio.low)}-{ratio(r.ratio.high)}, n={r.ratio.n}) | {r.better} |"
        )
    return lines


class Complaints(logging.Handler):
    """Counts the warnings agentrt logs while it runs (e.g. span batches the store lost).

    Messages that differ only in quoted values and numbers count as one kind, so
    "... on run 't7'" and "(3 failed batches so far)" do not each make their own line.
    """

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: Counter[str] = Counter()

    @staticmethod
    def kind(message: str) -> str:
        """The message with its quoted values and numbers blanked out."""
        return re.sub(r"\d+", "N", re.sub(r"'[^']*'", "'...'", message))

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[self.kind(record.getMessage())] += 1

    @contextmanager
    def counting(self) -> Iterator[None]:
        """Count agentrt's log records instead of printing their tracebacks."""
        logger = logging.getLogger("agentrt")
        logger.addHandler(self)
        propagate, logger.propagate = logger.propagate, False
        try:
            yield
        finally:
            logger.propagate = propagate
            logger.removeHandler(self)

    def said(self) -> str:
        """What was logged, most frequent first: "'message' xN; ..."."""
        return "; ".join(f"{msg!r} x{n}" for msg, n in self.counts.most_common())
