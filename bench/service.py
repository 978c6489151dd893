"""Service benchmark: N concurrent runs through the HTTP API of a real `agentrt serve`.

A real server process (`agentrt serve` on 127.0.0.1, a free port, its default thread pool
and run limit) serves ``service_app:build_runtime``: runs of ACTIONS tool calls whose model
takes LATENCY seconds an answer. An API key is made with `agentrt keys create`. N callers
(an ``httpx.AsyncClient`` each, one connection) start N runs at once (POST /runs), then
wait for each to end (GET /runs/{id}/join), while a few monitoring callers read runs in
flight (GET /runs/{id}). Figures: runs per second of wall time (first POST to the last
run ended) and the latency of the POSTs and the monitoring GETs.

Anchors, measured in the same run: for runs/s, the same N runs driven in this process
with ``await rt.astart(...)`` on the same app, same model latency, same thread pool size
(no HTTP, no background worker); for request latency, the same GET on the same server
when it has no runs in hand.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from agents import GOAL
from harness import QUICK, Complaints, Report, Row, num, paired
from service_app import ACTIONS, LATENCY, PRINCIPAL, build_runtime

from agentrt import AgentRuntime
from agentrt.cli.serve import serve
from agentrt.state import TERMINAL

__all__ = ["main"]

LEVELS = (2, 4) if QUICK else (20, 100)
"""Runs started at once, one row pair each."""
REPEATS = 1 if QUICK else 3
"""Interleaved pairs (HTTP batch, in-process batch) at each level."""
PROBERS = 5
"""Monitoring callers reading runs in flight (GET /runs/{id}) while a batch goes."""
PROBE_EVERY = 0.01 if QUICK else 0.05
"""Seconds each prober waits between its requests."""
IDLE_GETS = 5 if QUICK else 50
"""Requests that time the idle server after each batch, the latency anchor."""

APP = "service_app:build_runtime"
BENCH = Path(__file__).parent
THREADS: int = inspect.signature(serve).parameters["threads"].default
"""`agentrt serve`'s default --threads: the loop's pool where the graph's nodes run."""
MAX_RUNS: int = inspect.signature(serve).parameters["max_concurrent_runs"].default
"""`agentrt serve`'s default --max-concurrent-runs."""
RATE_LIMIT = "1000000/minute"
"""The one setting changed from the defaults: one key makes every request here."""


@dataclass
class Batch:
    """What one batch of N runs over HTTP gave."""

    runs_per_s: float
    post_ms: list[float]
    get_ms: list[float]
    idle_ms: list[float]
    server_cpu_s: float


@dataclass
class Level:
    """Every sample at one level of concurrency."""

    batches: list[Batch] = field(default_factory=list)
    local_per_s: list[float] = field(default_factory=list)
    local_cpu_s: list[float] = field(default_factory=list)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _cli(*args: str, app: str = APP) -> list[str]:
    return [sys.executable, "-m", "agentrt", *args, "--app", app]


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    key: str

    def cpu_seconds(self) -> float:
        """User + system CPU the server process has used so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def _serving(db: Path | str, log: Path, *args: str, app: str = APP) -> Iterator[Server]:
    """`agentrt serve` of ``app`` on a free port with a key made by `agentrt keys create`;
    stopped after. ``args``: more of serve's options (``--no-worker``)."""
    made = subprocess.run(
        [
            *_cli("keys", "create", "--id", PRINCIPAL.id, "--tenant", "bench", app=app),
            "--db",
            str(db),
        ],
        cwd=BENCH,
        capture_output=True,
        text=True,
        check=True,
    )
    port = _free_port()
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [
                *_cli("serve", app=app),
                "--db",
                str(db),
                "--port",
                str(port),
                "--rate-limit",
                RATE_LIMIT,
                "--log-level",
                "warning",
                *args,
            ],
            cwd=BENCH,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    server = Server(process, f"http://127.0.0.1:{port}", made.stdout.strip())
    try:
        deadline = time.monotonic() + 60
        while not _healthy(server):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"agentrt serve did not start: {log.read_text()[-2000:]}")
            time.sleep(0.05)  # the server starts in another process
        yield server
    finally:
        process.terminate()
        process.wait(timeout=30)


def _healthy(server: Server) -> bool:
    try:
        return httpx.get(server.url + "/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


async def _over_http(server: Server, n: int, batch: str, *, spread: float = 0.0) -> Batch:
    """Start n runs over HTTP, at once or one every ``spread / n`` seconds, and wait for
    each to end with ``GET /runs/{id}/join``, while PROBERS callers read runs in flight
    (``GET /runs/{id}``) every PROBE_EVERY seconds each.

    Each run has a caller of its own (an ``httpx.AsyncClient`` with one connection), as n
    separate clients would. One client with n connections spends its time choosing one:
    httpcore's pool looks at every connection for every request (a getpeername call
    each), so at n = 100 the benchmark's own loop was busy 86% of the time and a request
    waited there hundreds of ms before it was sent, while the server sat idle.
    """
    post_ms: list[float] = []
    get_ms: list[float] = []
    going: list[str] = []
    # uvicorn closes a connection idle for 5 s, httpx's default expiry is 5 s too: a request
    # sent on a connection as the server closes it fails. Expire ours well before.
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1, keepalive_expiry=1)
    headers = {"Authorization": f"Bearer {server.key}"}

    def caller() -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=server.url, headers=headers, limits=limits, timeout=120)

    async def one(i: int, client: httpx.AsyncClient) -> float:
        thread_id = f"{batch}-{i}"
        async with client:
            await asyncio.sleep(i * spread / n)
            sent = time.perf_counter()
            answer = await client.post("/runs", json={"goal": GOAL, "thread_id": thread_id})
            post_ms.append((time.perf_counter() - sent) * 1000)
            if answer.status_code != 202:
                raise RuntimeError(f"POST /runs answered {answer.status_code}: {answer.text}")
            going.append(thread_id)
            while True:
                answer = await client.get(f"/runs/{thread_id}/join", params={"timeout": 60})
                run = answer.raise_for_status().json()
                if run["status"] in TERMINAL:
                    going.remove(thread_id)
                    if run["status"] != "succeeded":
                        raise RuntimeError(f"run {thread_id} ended {run['status']}: {run['error']}")
                    return time.perf_counter()

    async def probe(k: int, client: httpx.AsyncClient) -> None:
        async with client:
            while not done.is_set():
                await asyncio.sleep(PROBE_EVERY)
                if not going:
                    continue
                k += PROBERS
                sent = time.perf_counter()
                (await client.get(f"/runs/{going[k % len(going)]}")).raise_for_status()
                get_ms.append((time.perf_counter() - sent) * 1000)

    # Made before the clock starts: making one (its SSL context) takes milliseconds of this
    # loop, which would fall on the requests already sent.
    clients = [caller() for _ in range(n)]
    probers = [caller() for _ in range(PROBERS)]
    done = asyncio.Event()
    cpu = server.cpu_seconds()
    started = time.perf_counter()
    probing = [asyncio.create_task(probe(k, client)) for k, client in enumerate(probers)]
    ended = await asyncio.gather(*(one(i, client) for i, client in enumerate(clients)))
    seconds = max(ended) - started
    done.set()
    await asyncio.gather(*probing)
    cpu = server.cpu_seconds() - cpu
    idle_ms = []
    async with caller() as client:
        for _ in range(IDLE_GETS):
            sent = time.perf_counter()
            (await client.get(f"/runs/{batch}-0")).raise_for_status()
            idle_ms.append((time.perf_counter() - sent) * 1000)
    return Batch(n / seconds, post_ms, get_ms, idle_ms, cpu)


async def _in_process(
    db: Path, n: int, build: Callable[[Path], AgentRuntime] = build_runtime
) -> tuple[float, float]:
    """The same n runs with ``rt.astart`` in this process (the runtime ``build`` makes):
    runs/s and CPU seconds."""
    # The pool `agentrt serve` gives its loop, so both sides have as many node threads.
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(THREADS, thread_name_prefix="agentrt")
    )
    rt = build(db)
    try:
        cpu = time.process_time()
        started = time.perf_counter()
        runs = await asyncio.gather(
            *(rt.astart(GOAL, principal=PRINCIPAL, thread_id=f"t{i}") for i in range(n))
        )
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu
    finally:
        rt.close()
    bad = [r for r in runs if r.status != "succeeded"]
    if bad:
        raise RuntimeError(f"{len(bad)} in-process runs failed, e.g. {bad[0].error}")
    return n / seconds, cpu


def _pct(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank) of values."""
    ordered = sorted(values)
    return ordered[min(len(ordered), max(1, math.ceil(p / 100 * len(ordered)))) - 1]


def _ms(values: list[float]) -> str:
    return " / ".join(num(_pct(values, p)) for p in (50, 95, 100))


def main() -> Report:
    """Run the service benchmark at each level; rows, and notes on where the time goes."""
    complaints = Complaints()
    levels = {n: Level() for n in LEVELS}
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="agentrt-bench-") as tmp:
        log = Path(tmp, "server.log")
        samples = 0
        with _serving(Path(tmp, "served.db"), log) as server:
            for n in LEVELS:
                level = levels[n]

                def http(n: int = n, level: Level = level) -> float:
                    nonlocal samples
                    samples += 1
                    batch = asyncio.run(_over_http(server, n, f"b{samples}"))
                    level.batches.append(batch)
                    return batch.runs_per_s

                def local(n: int = n, level: Level = level) -> float:
                    nonlocal samples
                    samples += 1
                    with complaints.counting():
                        per_s, cpu = asyncio.run(_in_process(Path(tmp, f"l{samples}.db"), n))
                    level.local_per_s.append(per_s)
                    level.local_cpu_s.append(cpu)
                    return per_s

                a, b = paired(http, local, REPEATS, warmup=0 if QUICK else 1)
                # the warm-up round is not a sample
                for kept in (level.batches, level.local_per_s, level.local_cpu_s):
                    del kept[: len(kept) - REPEATS]
                rows.append(
                    Row.of(
                        "service",
                        f"runs/s, {n} runs at once over HTTP ({ACTIONS} tool calls a run, "
                        f"{LATENCY * 1000:.0f} ms model latency, {THREADS} threads)",
                        a,
                        "the same runs in-process: `await rt.astart` (no HTTP)",
                        b,
                        better="higher",
                    )
                )
                rows.append(
                    Row.of(
                        "service",
                        f"ms, p95 of the API requests (POST /runs, GET /runs/{{id}}) "
                        f"while {n} runs go",
                        [_pct(x.post_ms + x.get_ms, 95) for x in level.batches],
                        "GET /runs/{id} on the same server with no runs in hand",
                        [_pct(x.idle_ms, 95) for x in level.batches],
                    )
                )
        server_said = Complaints()
        for line in log.read_text(errors="replace").splitlines():
            if line and not line[0].isspace() and not line.startswith(("Traceback", "agentrt:")):
                server_said.counts[Complaints.kind(line)] += 1
    return Report(rows=rows, notes=_notes(levels, complaints, server_said))


def _notes(levels: dict[int, Level], local: Complaints, server: Complaints) -> str:
    lines = [
        "| runs at once | HTTP runs/s | in-process runs/s | POST /runs ms p50 / p95 / max "
        "| GET /runs/{id} ms p50 / p95 / max | requests | server CPU ms/run "
        "| in-process CPU ms/run |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n, level in levels.items():
        batches = level.batches
        post = [ms for x in batches for ms in x.post_ms]
        get = [ms for x in batches for ms in x.get_ms]
        lines.append(
            f"| {n} | {' '.join(num(x.runs_per_s) for x in batches)} | "
            f"{' '.join(num(x) for x in level.local_per_s)} | {_ms(post)} | {_ms(get)} | "
            f"{len(post) + len(get)} | "
            f"{num(sum(x.server_cpu_s for x in batches) / (n * len(batches)) * 1000)} | "
            f"{num(sum(level.local_cpu_s) / (n * len(level.local_cpu_s)) * 1000)} |"
        )
    ceiling = (ACTIONS + 1) * LATENCY
    text = (
        f"`agentrt serve` with its defaults ({THREADS} threads for the graph's nodes, "
        f"{MAX_RUNS} runs driven at once) but `--rate-limit {RATE_LIMIT}`, since one key "
        f"makes every request. A run is {ACTIONS} model turns calling the no-op read tool "
        f"and a final answer, {ACTIONS + 1} model calls of {LATENCY * 1000:.0f} ms: were "
        f"waiting on the model all, N runs would end in {ceiling:.2f} s. Each run's caller "
        "waits for its end with `GET /runs/{id}/join` (answered as the run ends); "
        f"{PROBERS} monitoring callers read runs in flight (`GET /runs/{{id}}`), each "
        f"every {PROBE_EVERY * 1000:.0f} ms: those are the GETs below. Runs/s are per "
        "sample; latencies pool every request of the samples at that level.\n\n"
    ) + "\n".join(lines)
    if server.counts:
        text += f"\n\nThe server logged: {server.said()}."
    if local.counts:
        text += f"\n\nIn-process, agentrt logged: {local.said()}."
    return text


if __name__ == "__main__":
    main()
