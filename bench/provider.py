"""Provider benchmark: the service benchmark's runs asked of a real provider client.

`agentrt serve` serves ``provider_app:build_runtime``: runs whose model is langchain-openai's
``ChatOpenAI``, asking a local OpenAI-compatible server (openai_fake.py, a process of its
own) that calls the no-op tool ACTIONS times, then answers WORDS words, each answer after
LATENCY seconds. RUNS runs start at once over HTTP, as in the service benchmark. The server
drives each run on LangGraph's stream, for a page that may watch it; no page watches these,
so their model is asked for whole answers (``RunDeps.quiet_threads``), as an unstreamed
call is. Anchor, in the same run: the same runs in this process with ``await rt.astart``,
which invokes the graph and never streams.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

from harness import QUICK, Report, Row, num, paired
from openai_fake import openai_fake
from provider_app import URL_VARIABLE, build_runtime
from service import _in_process, _over_http, _serving
from service_app import ACTIONS, LATENCY

__all__ = ["main"]

RUNS = 4 if QUICK else 20
"""Runs started at once."""
WORDS = 20 if QUICK else 300
"""Words in each final answer: a chunk each when streamed."""
REPEATS = 1 if QUICK else 3
"""Interleaved pairs (HTTP batch, in-process batch)."""
APP = "provider_app:build_runtime"


def main() -> Report:
    """Run the provider benchmark; its row, and the CPU each side spent a run."""
    server_ms: list[float] = []
    local_ms: list[float] = []
    with (
        openai_fake(calls=ACTIONS, words=WORDS, latency=LATENCY) as url,
        tempfile.TemporaryDirectory(prefix="agentrt-bench-") as tmp,
    ):
        os.environ[URL_VARIABLE] = url  # the server process inherits it
        samples = [0]
        with _serving(Path(tmp, "served.db"), Path(tmp, "server.log"), app=APP) as server:

            def http() -> float:
                samples[0] += 1
                batch = asyncio.run(_over_http(server, RUNS, f"b{samples[0]}"))
                server_ms.append(batch.server_cpu_s / RUNS * 1000)
                return batch.runs_per_s

            def local() -> float:
                samples[0] += 1
                db = Path(tmp, f"l{samples[0]}.db")
                per_s, cpu = asyncio.run(_in_process(db, RUNS, build_runtime))
                local_ms.append(cpu / RUNS * 1000)
                return per_s

            a, b = paired(http, local, REPEATS, warmup=0 if QUICK else 1)
    del server_ms[: len(server_ms) - REPEATS], local_ms[: len(local_ms) - REPEATS]
    row = Row.of(
        "provider",
        f"runs/s, {RUNS} runs at once over HTTP, the real OpenAI client "
        f"({ACTIONS} tool calls and a {WORDS}-word answer a run, {LATENCY * 1000:.0f} ms "
        "a model answer)",
        a,
        "the same runs in-process: `await rt.astart` (no HTTP, no stream)",
        b,
        better="higher",
    )
    notes = (
        f"CPU a run: the server {' '.join(num(x) for x in server_ms)} ms, the in-process "
        f"runs {' '.join(num(x) for x in local_ms)} ms (their process, the client included)."
    )
    print(f"  {notes}")
    return Report(rows=[row], notes=notes)


if __name__ == "__main__":
    main()
