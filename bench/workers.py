"""Workers benchmark: `agentrt worker` processes on PostgreSQL against one process on SQLite.

The runs are the service benchmark's (``service_app``: ACTIONS tool calls a run, LATENCY
seconds a model answer). Each sample starts its worker processes (``--concurrency
CONCURRENCY`` each) on a fresh database, waits until they drive, writes N runs with
``rt.create`` from this process (pending: the workers claim them, woken by the database on
PostgreSQL, looking every 0.25 s on SQLite) and times from the first write to the last run
ended. The PostgreSQL server is a throwaway one started here as the tests start theirs
(tests/postgres.py: fsync and synchronous_commit off, so it is not durable; SQLite runs
with agentrt's own pragmas, WAL and synchronous=NORMAL).

Figures, each against an anchor measured in the same run:

- runs/s with 1, 2 and 4 workers on PostgreSQL against one worker on SQLite (the same
  driving code in one process), and 2 and 4 workers against 1 on PostgreSQL (scaling);
- p95 latency of the API requests while 100 runs go, when the API process drives no runs
  (`serve --no-worker` on PostgreSQL, two workers beside it, at lower CPU priority and at
  the same) against today's `serve`, which drives them (SQLite, the service benchmark's
  callers, the runs arriving over a second);
- PostgreSQL transactions committed per run (pg_stat_database.xact_commit over the batch:
  every process's, reads too, since each autocommitted statement is a transaction) and
  storage per step (a step is one model turn calling one tool) against SQLite's file.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents import GOAL
from harness import QUICK, Report, Row, num, paired
from service import _over_http, _pct, _serving
from service_app import ACTIONS, LATENCY, PRINCIPAL, build_runtime

__all__ = ["main"]

ROOT = Path(__file__).resolve().parent.parent
BENCH = Path(__file__).parent
APP = "service_app:build_runtime"

RUNS = 12 if QUICK else 150
"""Runs a batch writes."""
CONCURRENCY = 16
"""Runs one worker drives at once."""
REPEATS = 1 if QUICK else 2
"""Interleaved pairs per figure."""
API_RUNS = 4 if QUICK else 100
"""Runs in flight while the API's latency is measured."""
WORKER_NICE = 10
"""How far below normal CPU priority the workers run beside the API in its latency figure:
on one machine the API's requests then get a core when they come, as they would on a
machine of their own."""
API_SPREAD = 0.2 if QUICK else 1.0
"""Seconds over which those runs arrive (evenly): runs in flight, not a burst of POSTs in
one millisecond, which one server process answers one at a time (the service benchmark
times such bursts)."""
STEPS = RUNS * ACTIONS
"""Steps a batch makes: one model turn calling one tool each (storage per step)."""


def _postgres() -> Any:
    """The tests' throwaway PostgreSQL server (tests/ is not a package bench/ sees)."""
    sys.path.insert(0, str(ROOT))
    try:
        from tests.postgres import PostgresServer
    finally:
        sys.path.pop(0)
    return PostgresServer.start()


@contextmanager
def _workers(
    db: str, count: int, logs: Path, *, nice: int = 0
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``count`` `agentrt worker` processes on ``db``, once each says it drives runs;
    ``nice``: started that much below normal CPU priority (``nice -n``)."""
    procs: list[subprocess.Popen[bytes]] = []
    paths = []
    try:
        for n in range(count):
            path = logs / f"worker-{time.monotonic_ns()}-{n}.log"
            paths.append(path)
            with path.open("wb") as log:
                procs.append(
                    subprocess.Popen(
                        [*(["nice", "-n", str(nice)] if nice else []),
                         sys.executable, "-m", "agentrt", "worker", "--app", APP, "--db", db,
                         "--concurrency", str(CONCURRENCY)],
                        cwd=BENCH, stdout=subprocess.DEVNULL, stderr=log,
                    )
                )  # fmt: skip
        deadline = time.monotonic() + 120
        for proc, path in zip(procs, paths, strict=True):
            while "worker: driving runs from" not in path.read_text(errors="replace"):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"a worker did not start: {path.read_text()[-2000:]}")
                time.sleep(0.05)  # it starts in another process
        yield procs
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            if proc.wait(timeout=60) != 0:
                raise RuntimeError(f"a worker exited {proc.returncode} on SIGTERM")


def _commits(admin_url: str, db_url: str) -> int:
    import psycopg

    name = db_url.rsplit("/", 1)[1]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = %s", (name,)
        ).fetchone()
    assert row is not None
    return int(row[0])


def _pg_bytes(db_url: str) -> int:
    import psycopg

    with psycopg.connect(db_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind = 'r'"
        ).fetchone()
    assert row is not None
    return int(row[0])


def _sqlite_bytes(path: str) -> int:
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return Path(path).stat().st_size


def _cpu(pid: int, *, children: bool = False) -> float:
    """CPU seconds process ``pid`` has used (and, with ``children``, those it has reaped)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def _postgres_cpu(postmaster: int | None) -> float:
    """CPU seconds of the server: the postmaster, the backends it reaped, the live ones."""
    if postmaster is None:
        return 0.0
    total = _cpu(postmaster, children=True)
    for child in Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split():
        try:
            total += _cpu(int(child))
        except FileNotFoundError:  # it ended between the two reads
            continue
    return total


@contextmanager
def _counting(db: str) -> Iterator[Callable[[], tuple[int, int]]]:
    """A count of the runs that ended, and of them those that succeeded: one cheap query on
    one connection kept open while the batch goes. A new connection for each poll cost the
    server a backend's start each time (4 ms of CPU), which the batch counted as the runs'."""
    ended = "status IN ('succeeded', 'failed', 'cancelled', 'budget_exceeded')"
    sql = f"SELECT count(*), count(*) FILTER (WHERE status = 'succeeded') FROM runs WHERE {ended}"
    if db.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(db, autocommit=True) as pg:
            yield lambda: _counts(pg.execute(sql).fetchone())
        return
    conn = sqlite3.connect(db, timeout=30)
    try:
        yield lambda: _counts(conn.execute(sql).fetchone())
    finally:
        conn.close()


def _counts(row: Any) -> tuple[int, int]:
    assert row is not None
    return int(row[0]), int(row[1] or 0)


def _batch(db: str, workers: int, logs: Path, postmaster: int | None = None) -> Batch:
    """RUNS runs written here and driven by ``workers`` worker processes: runs/s, and the
    CPU each side spent on them."""
    if "://" not in db:
        build_runtime(db).close()  # the file made first: a worker opens only an existing one
    with _workers(db, workers, logs) as procs, build_runtime(db) as rt, _counting(db) as counts:
        cpu = [_cpu(p.pid) for p in procs], _postgres_cpu(postmaster), time.process_time()
        started = time.perf_counter()
        for _ in range(RUNS):
            rt.create(GOAL, principal=PRINCIPAL)
        while (ended := counts())[0] < RUNS:
            time.sleep(0.1)  # the runs move in the workers
            if time.perf_counter() - started > 600:
                raise RuntimeError(f"{RUNS - ended[0]} runs did not end in 600 s")
        seconds = time.perf_counter() - started
        worker_cpu = sum(_cpu(p.pid) for p in procs) - sum(cpu[0])
        bench_cpu = time.process_time() - cpu[2]
    if ended[1] != RUNS:
        raise RuntimeError(f"{RUNS - ended[1]} runs did not succeed")
    # The workers are gone and their backends reaped: the server's CPU is all counted.
    time.sleep(0.2)
    return Batch(RUNS / seconds, worker_cpu, _postgres_cpu(postmaster) - cpu[1], bench_cpu)


@dataclass
class Batch:
    """One batch: runs/s, and CPU seconds of the workers, the server and this process."""

    per_s: float
    workers_cpu: float
    server_cpu: float
    bench_cpu: float


def main() -> Report:
    cores = os.cpu_count() or 1
    rows: list[Row] = []
    measured: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="agentrt-bench-") as tmp, ExitStack() as stack:
        logs = Path(tmp)
        server = _postgres()
        stack.callback(server.stop)
        files = iter(range(1_000_000))

        postmaster = int((server._data / "postmaster.pid").read_text().split()[0])

        def cpu(key: str, batch: Batch) -> None:
            for side, seconds in (
                ("workers", batch.workers_cpu),
                ("server", batch.server_cpu),
                ("bench", batch.bench_cpu),
            ):
                measured.setdefault(f"{key} {side}", []).append(seconds / RUNS * 1000)

        def sqlite_one() -> float:
            path = str(logs / f"s{next(files)}.db")
            batch = _batch(path, 1, logs)
            measured.setdefault("sqlite bytes", []).append(_sqlite_bytes(path) / STEPS)
            cpu("sqlite", batch)
            return batch.per_s

        def postgres(workers: int) -> float:
            url = server.create_database()
            before = _commits(server.admin_url, url)
            size = _pg_bytes(url)
            batch = _batch(url, workers, logs, postmaster)
            commits = _commits(server.admin_url, url) - before
            measured.setdefault(f"commits {workers}", []).append(commits / RUNS)
            measured.setdefault(f"pg bytes {workers}", []).append((_pg_bytes(url) - size) / STEPS)
            cpu(f"pg {workers}", batch)
            server.drop_database(url)
            return batch.per_s

        samples: dict[int, tuple[list[float], list[float]]] = {}
        for workers in (1, 2, 4):
            samples[workers] = paired(lambda w=workers: postgres(w), sqlite_one, REPEATS, warmup=0)
            ours, anchor = samples[workers]
            rows.append(
                Row.of(
                    "workers",
                    f"runs/s, {workers} worker process{'es' if workers > 1 else ''} on "
                    f"PostgreSQL ({RUNS} runs, {ACTIONS} tool calls each, "
                    f"{LATENCY * 1000:.0f} ms model latency, {CONCURRENCY} at a time a "
                    f"worker, {cores} cores)",
                    ours,
                    "one worker process on SQLite, the same runs",
                    anchor,
                    better="higher",
                )
            )
        one = samples[1][0]
        for workers in (2, 4):
            rows.append(
                Row.of(
                    "workers",
                    f"runs/s, {workers} worker processes on PostgreSQL ({cores} cores)",
                    samples[workers][0],
                    "one worker process on PostgreSQL",
                    one,
                    better="higher",
                )
            )
        rows.append(
            Row.of(
                "workers",
                "PostgreSQL bytes per step (tables and indexes, 1 worker)",
                measured["pg bytes 1"],
                "SQLite file bytes per step (one worker)",
                measured["sqlite bytes"][: len(measured["pg bytes 1"])],
            )
        )
        rows.extend(_api_latency(server, logs))
    notes = _notes(measured, cores)
    return Report(rows=rows, notes=notes)


def _api_latency(server: Any, logs: Path) -> list[Row]:
    """p95 ms of API requests while API_RUNS runs go: serve --no-worker on PostgreSQL with
    two workers, at lower CPU priority (WORKER_NICE) and at the same, against plain serve
    on SQLite driving them."""
    batches = iter(range(1_000_000))

    def api_only(nice: int) -> float:
        url = server.create_database()
        try:
            with (
                _serving(url, logs / "api.log", "--no-worker") as api,
                _workers(url, 2, logs, nice=nice),
            ):
                batch = asyncio.run(
                    _over_http(api, API_RUNS, f"w{next(batches)}", spread=API_SPREAD)
                )
        finally:
            server.drop_database(url)
        return _pct(batch.post_ms + batch.get_ms, 95)

    def driving() -> float:
        path = logs / f"d{next(batches)}.db"
        with _serving(path, logs / "serve.log") as api:
            batch = asyncio.run(_over_http(api, API_RUNS, f"d{next(batches)}", spread=API_SPREAD))
        return _pct(batch.post_ms + batch.get_ms, 95)

    rows = []
    settings = [(WORKER_NICE, f"2 workers at nice {WORKER_NICE}"), (0, "2 workers")]
    for nice, how in settings[:1] if QUICK else settings:  # quick: one of each kind
        ours, anchor = paired(lambda nice=nice: api_only(nice), driving, REPEATS, warmup=0)
        rows.append(
            Row.of(
                "workers",
                f"ms, p95 of the API requests (POST /runs, GET /runs/{{id}}) while {API_RUNS} "
                f"runs go, the API driving none (`serve --no-worker` on PostgreSQL + {how})",
                ours,
                "today's `agentrt serve`, which drives them (SQLite)",
                anchor,
            )
        )
    return rows


def _notes(measured: dict[str, list[float]], cores: int) -> str:
    commits = ", ".join(
        f"{w} worker{'s' if w > 1 else ''}: {' '.join(num(x) for x in measured[f'commits {w}'])}"
        for w in (1, 2, 4)
    )
    sizes = ", ".join(
        f"{w}: {' '.join(num(x) for x in measured[f'pg bytes {w}'])}" for w in (1, 2, 4)
    )
    rows = [
        "| setup | workers' CPU ms/run | PostgreSQL server CPU ms/run | this process ms/run |",
        "|---|---:|---:|---:|",
    ]
    for key, name in (
        ("sqlite", "1 worker, SQLite"),
        ("pg 1", "1 worker, PostgreSQL"),
        ("pg 2", "2 workers, PostgreSQL"),
        ("pg 4", "4 workers, PostgreSQL"),
    ):
        rows.append(
            f"| {name} | "
            + " | ".join(
                " ".join(num(x) for x in measured[f"{key} {side}"])
                for side in ("workers", "server", "bench")
            )
            + " |"
        )
    return (
        f"The machine has {cores} cores. Each run is {ACTIONS} model turns calling the "
        f"no-op read tool and a final answer ({ACTIONS + 1} model calls of "
        f"{LATENCY * 1000:.0f} ms), 10 supersteps, each checkpointed. PostgreSQL "
        f"transactions committed per run ({RUNS} runs a batch, every process's, reads "
        f"included): {commits}. PostgreSQL bytes per step by worker count: {sizes}; SQLite "
        f"bytes per step: {' '.join(num(x) for x in measured['sqlite bytes'])}.\n\n"
        "CPU per run, each sample (this process writes the runs and counts the ended ones "
        "every 0.1 s):\n\n" + "\n".join(rows)
    )


if __name__ == "__main__":
    print(main())
