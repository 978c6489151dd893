"""Worker chaos: `agentrt worker` processes on one PostgreSQL, a random one SIGKILLed often.

The workflow is chaos_app's (reserve stock and charge the card, idempotent; email the
customer and notify the warehouse, NOT idempotent), its side effects landing in a SQLite
file standing for the outside world, each taking CHAOS_LATENCY seconds between the call
going out and the effect happening, as does each model answer. This process creates the
runs (pending, for the workers to claim), starts the workers, and then, until it has made
its kills, SIGKILLs a random worker at random moments and starts it again; it also plays
the operator at every reconcile gate (an effect in doubt: it looks in the outside world
for the effect's key, then resolves with what it finds or says retry). The leases are
short (CHAOS_LEASE_TTL), so a killed worker's runs are taken over by the others when they
expire. At the end it checks the outside world: no effect twice, none lost, and every
repeated call of a non-idempotent tool authorised by a person.

    python -m tests.chaos_workers --runs 200 --min-kills 100 --seed 1
    python -m tests.chaos_workers --db postgresql://... (a server of yours; else a
        throwaway one is started, as the tests start theirs)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agentrt import AgentRuntime, Decision
from agentrt.tools import effect_key
from agentrt.tools.ledger import CRASH_LIMIT
from tests import chaos_app

ROOT = Path(__file__).resolve().parent.parent
APP = "tests.chaos_app:build_runtime"
STARTUP = 2.5
"""Seconds a worker is given to start (import, connect) before it may be killed: a kill
before it claims anything tests nothing."""
TERMINAL = {"succeeded", "failed", "cancelled", "budget_exceeded"}
NOT_IDEMPOTENT = {
    "send_email": ("emails", "to", "message"),
    "notify_warehouse": ("notices", "sku", "notice"),
}


class Workers:
    """The worker processes, each started again when killed."""

    def __init__(self, db: str, count: int, workdir: Path, env: dict[str, str]) -> None:
        self.db, self.workdir, self.env = db, workdir, env
        self.started = 0
        self.born: list[float] = []
        self.procs: list[subprocess.Popen[bytes]] = []
        self.numbers: list[int] = []
        """Each slot's worker number, which names its log."""
        for _ in range(count):
            self.procs.append(self._start())
            self.numbers.append(self.started)
            self.born.append(time.monotonic())

    def _start(self) -> subprocess.Popen[bytes]:
        self.started += 1
        log = (self.workdir / f"worker-{self.started}.log").open("wb")
        args = ["--concurrency", "8", "--poll", "2", "--log-level", "warning"]
        return subprocess.Popen(
            [sys.executable, "-m", "agentrt", "worker", "--app", APP, "--db", self.db, *args],
            cwd=ROOT,
            env={**os.environ, **self.env},
            stdout=subprocess.DEVNULL,
            stderr=log,
        )

    def kill_one(self, rng: random.Random) -> bool:
        """SIGKILL a random worker that has had time to start (no cleanup, its leases left
        to expire) and start another; False if all are still starting."""
        ready = [n for n, born in enumerate(self.born) if time.monotonic() - born > STARTUP]
        if not ready:
            return False
        n = rng.choice(ready)
        self.procs[n].kill()
        self.procs[n].wait()
        self.procs[n] = self._start()
        self.numbers[n] = self.started
        self.born[n] = time.monotonic()
        return True

    def stop(self) -> list[int | None]:
        """SIGTERM each once it has said it is ready; their exit statuses. (A SIGTERM while
        Python still imports, before agentrt runs at all, ends a process by the signal.)"""
        for n, proc in enumerate(self.procs):
            log = self.workdir / f"worker-{self.numbers[n]}.log"
            deadline = time.monotonic() + 120
            while b"agentrt worker: ready" not in log.read_bytes():
                if proc.poll() is not None or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            proc.terminate()
        codes: list[int | None] = []
        for proc in self.procs:
            try:
                codes.append(proc.wait(timeout=60))
            except subprocess.TimeoutExpired:
                proc.kill()
                codes.append(None)
        return codes


def _sink_rows(sql: str, *params: Any) -> list[Any]:
    path = chaos_app.sink_path("")
    if not path.exists():
        return []
    conn = sqlite3.connect(path, timeout=30)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


# What each idempotent tool returns, from its arguments: an idempotent call whose process
# died twice in it is put to a person too (the ledger's CRASH_LIMIT).
IDEMPOTENT = {
    "reserve_stock": ("reservations", lambda a: {"reserved": a["sku"], "qty": a["qty"]}),
    "charge_card": ("charges", lambda a: {"charged": a["who"], "cents": a["cents"]}),
}


def settle_gates(rt: AgentRuntime) -> int:
    """The operator: settle every reconcile gate by looking in the outside world."""
    settled = 0
    for request in rt.approvals(limit=1000):
        if request.kind != "reconcile":
            continue
        key = effect_key(request.thread_id, request.step_id, request.tool, request.args)
        if request.tool in IDEMPOTENT:
            table, result_of = IDEMPOTENT[request.tool]
            found = _sink_rows(f"SELECT key FROM {table} WHERE key=?", key)
            result = result_of(request.args)
        else:
            table, field, number = NOT_IDEMPOTENT[request.tool]
            found = _sink_rows(f"SELECT n FROM {table} WHERE key=?", key)
            result = {field: request.args[field], number: found[0][0]} if found else None
        if found:
            decision = Decision.resolve(request.id, result=result, by=chaos_app.CLERK)
        else:
            decision = Decision.retry(request.id, by=chaos_app.CLERK)
        try:
            rt.decide(decision, resume=False)
        except Exception as exc:  # decided meanwhile by nobody else: report, go on
            print(f"could not settle {request.id}: {exc}", file=sys.stderr)
            continue
        settled += 1
    return settled


def drive(
    db: str, workdir: Path, *, runs: int, min_kills: int, seed: int, workers: int = 3
) -> dict[str, Any]:
    rng = random.Random(seed)
    counts = {"runs": runs, "kills": 0, "reconciles": 0, "workers_started": 0}
    failures: list[str] = []
    env = {"CHAOS_SINK": str(workdir / "sink.db")}
    os.environ.update(env)  # this process reads the same outside world
    started = time.monotonic()
    with chaos_app.build_runtime(db) as rt:
        threads = [f"run-{n}" for n in range(runs)]
        for thread_id in threads:
            rt.create(chaos_app.GOAL, principal=chaos_app.OPERATOR, thread_id=thread_id)
        pool = Workers(db, workers, workdir, env)
        deadline = time.monotonic() + 120 + 3 * min_kills + runs
        try:
            next_kill = time.monotonic() + rng.uniform(0.5, 1.5)
            while time.monotonic() < deadline:
                counts["reconciles"] += settle_gates(rt)
                left = [t for t in threads if rt.get(t).status.value not in TERMINAL]
                if not left and counts["kills"] >= min_kills:
                    break
                if not left:  # all done before the kills: more runs to kill under
                    more = [f"run-{len(threads) + n}" for n in range(10)]
                    for thread_id in more:
                        rt.create(chaos_app.GOAL, principal=chaos_app.OPERATOR, thread_id=thread_id)
                    threads += more
                if (
                    left  # a kill with no run in flight tests nothing
                    and counts["kills"] < min_kills
                    and time.monotonic() >= next_kill
                    and pool.kill_one(rng)
                ):
                    counts["kills"] += 1
                    next_kill = time.monotonic() + rng.uniform(0.2, 1.0)
                time.sleep(0.1)  # the runs move in the workers; this only paces the kills
            else:
                failures.append("the runs did not all end in time")
        finally:
            codes = pool.stop()
            counts["workers_started"] = pool.started
        if any(code != 0 for code in codes):
            failures.append(f"workers stopped with {codes} on SIGTERM (0 expected)")
        counts["runs"] = len(threads)
        for thread_id in threads:
            status = rt.get(thread_id).status.value
            if status != "succeeded":
                failures.append(f"{thread_id}: ended {status!r}")
        counts.update(_audit(rt, threads, failures))
    counts["seconds"] = round(time.monotonic() - started, 1)
    return {**counts, "failures": failures}


def _audit(rt: AgentRuntime, threads: list[str], failures: list[str]) -> dict[str, int]:
    """Zero duplicates, zero lost, and every repeat of a non-idempotent call authorised."""
    duplicates = lost = resolved = retried = 0
    for table, tool_name in (
        ("reservations", "reserve_stock"),
        ("charges", "charge_card"),
        ("emails", "send_email"),
        ("notices", "notify_warehouse"),
    ):
        found: dict[str, int] = dict(
            _sink_rows(f"SELECT thread, count(*) FROM {table} GROUP BY thread")
        )
        for thread_id in threads:
            n = found.get(thread_id, 0)
            if n == 0:
                lost += 1
                failures.append(f"{thread_id}: no {tool_name} effect")
            if n > 1:
                duplicates += n - 1
                failures.append(f"{thread_id}: {n} {tool_name} effects")
    for thread_id in threads:
        gates = rt.approvals(None, thread_id=thread_id, limit=1000)
        authorised: dict[str, int] = {}
        attempts = {e.step_id: e.attempts for e in rt.store.list_effects(thread_id)}
        for gate in gates:
            if gate.kind != "reconcile":
                continue
            if gate.tool not in NOT_IDEMPOTENT and attempts.get(gate.step_id, 0) < CRASH_LIMIT:
                failures.append(f"{thread_id}: idempotent {gate.tool} was sent to reconcile")
            if gate.status.value == "retried":
                retried += 1
                authorised[gate.step_id] = authorised.get(gate.step_id, 0) + 1
            elif gate.status.value == "resolved":
                resolved += 1
        for effect in rt.store.list_effects(thread_id):
            if effect.tool in NOT_IDEMPOTENT and effect.attempts - 1 != authorised.get(
                effect.step_id, 0
            ):
                failures.append(
                    f"{thread_id}: {effect.tool} ran {effect.attempts} times with "
                    f"{authorised.get(effect.step_id, 0)} retries authorised"
                )
    repeats = _sink_rows(
        "SELECT count(*) - count(DISTINCT key) FROM calls "
        "WHERE tool IN ('reserve_stock', 'charge_card')"
    )[0][0]
    return {
        "duplicates": duplicates,
        "lost": lost,
        "resolved": resolved,
        "retried": retried,
        "idempotent_recalls": repeats,
    }


@contextmanager
def postgres(url: str | None) -> Iterator[str]:
    """``url``, or a database on a throwaway server started for the run."""
    if url:
        yield url
        return
    from tests.postgres import PostgresServer

    server = PostgresServer.start()
    try:
        yield server.create_database()
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=None, help="postgresql:// URL (default: a throwaway)")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--min-kills", type=int, default=100)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--lease-ttl", type=float, default=1.5)
    parser.add_argument("--dir", type=Path, default=None)
    opts = parser.parse_args()
    workdir = opts.dir or Path(tempfile.mkdtemp(prefix="agentrt-chaos-workers-"))
    workdir.mkdir(parents=True, exist_ok=True)
    # Read by chaos_app when imported: here, and in every worker (which inherit them).
    os.environ["CHAOS_LATENCY"] = str(opts.latency)
    os.environ["CHAOS_LEASE_TTL"] = str(opts.lease_ttl)
    chaos_app.LATENCY = opts.latency
    with postgres(opts.db) as db:
        report = drive(
            db, workdir, runs=opts.runs, min_kills=opts.min_kills, seed=opts.seed,
            workers=opts.workers,
        )  # fmt: skip
    print(
        " ".join(
            f"{k}={report[k]}"
            for k in ("runs", "kills", "workers_started", "reconciles", "resolved", "retried")
        )
        + f" duplicates={report['duplicates']} lost={report['lost']}"
        + f" idempotent_recalls={report['idempotent_recalls']} failures={len(report['failures'])}"
        + f" seconds={report['seconds']}"
    )
    print(json.dumps(report))
    sys.exit(1 if report["failures"] else 0)


if __name__ == "__main__":
    main()
