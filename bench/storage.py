"""Storage benchmark: checkpoint bytes per step of an agentrt run against plain LangGraph.

agentrt keeps the run's event log in a LangGraph ``DeltaChannel``, so each checkpoint holds
only the events written in its own superstep (plus a full snapshot now and then). The
anchor is the usual way to keep a log in LangGraph state, an ``operator.add`` list channel,
whose every checkpoint holds the whole log so far: storage quadratic in the run's length.

Both graphs do the same shape of work per step, plan -> policy -> tool -> verify, each
node a checkpointed superstep on the anchor's side, two on agentrt's (policy and verify run
in the superstep before them, agentrt.graphs.onward), with ``durability="sync"`` into SQLite through
LangGraph's SqliteSaver, one thread per run, each on its own temporary file (but for
baseline runs longer than KEEP_LIMIT, counted as written and not kept).

Byte counts are deterministic (a turn-counting model, fixed events) except for the
baseline's channel version strings (SqliteSaver's own), whose random suffix
(``random.random()`` formatted) varies in length by a few characters; that moves
bytes/step by under 1% between runs, far below the effects measured, so every run is
measured once and no median is taken. Wall times are
single runs, for scale only.
"""

from __future__ import annotations

import json
import operator
import sqlite3
import tempfile
import time
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, TypedDict

from agents import agentrt_runtime, timed_start
from harness import QUICK, Report, Row
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langgraph.channels.delta import DeltaChannel
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph

from agentrt import RunState
from agentrt.store.sqlite.compact import CompactSerializer

__all__ = [
    "STEPS",
    "Measurement",
    "StepModel",
    "StorageBytes",
    "main",
    "run_agentrt",
    "run_baseline",
]

STEPS: tuple[int, ...] = (10, 30) if QUICK else (100, 500, 2000)
"""Run lengths, in steps (one model turn calling one tool), to see the growth."""

KEEP_LIMIT = 20 if QUICK else 500
"""Longest baseline run kept whole on disk; a longer one is counted as it is written.

The operator.add baseline's storage is quadratic: 2000 steps would be about 4 GB. Past
this length its checkpoints go to an in-memory SQLite through the same SqliteSaver,
counted row by row as written and pruned behind, so only bytes are reported for it.
"""

# LangGraph counts supersteps against the recursion limit; a 500-step baseline needs 2000.
_RECURSION_LIMIT = 1_000_000

# Decoding with agentrt's serializer (which reads plain msgpack too) lets us find which
# checkpoints carry a full DeltaChannel snapshot of the event log; parts are sized as
# LangGraph's msgpack, before agentrt deflates a checkpoint.
_LOAD = CompactSerializer()
_SERDE = JsonPlusSerializer()


@dataclass(frozen=True, slots=True)
class StorageBytes:
    """What LangGraph's two tables hold after one run, and what the file takes on disk."""

    checkpoints: int
    """Rows in ``checkpoints``: one per superstep, plus the input checkpoint."""
    checkpoint_blob: int
    """Sum of ``length(checkpoint)``: the serialized channel values and versions."""
    metadata: int
    """Sum of ``length(metadata)``."""
    writes: int
    """Sum of ``length(value)`` over ``writes``: every task's channel writes."""
    event_writes: int
    """The part of ``writes`` that is the event log itself (channel ``events``)."""
    snapshots: int
    """How many checkpoints carry the whole event log in their blob."""
    snapshot_bytes: int
    """Serialized size of those whole-log values (for the baseline: in every checkpoint)."""
    values_bytes: int
    """Serialized size of the blobs' channel_values: the state itself, whole-log copies too."""
    versions_bytes: int
    """Serialized size of the blobs' channel_versions and versions_seen: LangGraph's
    bookkeeping of which channel changed when, a version string per channel per node."""
    file: int
    """Size of the SQLite file after a truncating WAL checkpoint, page slack included."""

    @property
    def content(self) -> int:
        """Table-content bytes: blobs, metadata and write values; robust to page slack."""
        return self.checkpoint_blob + self.metadata + self.writes


@dataclass(frozen=True, slots=True)
class Measurement:
    """One run of one graph: its length, what it stored and how long it took."""

    steps: int
    bytes: StorageBytes
    seconds: float
    kept: bool = True
    """False: counted as written and not kept, so no file size and no breakdown."""

    @property
    def per_step(self) -> float:
        """Table-content bytes per step."""
        return self.bytes.content / self.steps

    @property
    def file_per_step(self) -> float:
        """SQLite file bytes per step."""
        return self.bytes.file / self.steps


def _size(value: Any) -> int:
    """Bytes of ``value`` in LangGraph's msgpack (before agentrt's deflate)."""
    return len(_SERDE.dumps_typed(value)[1])


def measure(path: Path) -> StorageBytes:
    """Count what LangGraph stored in the SQLite file at ``path``.

    Call it after every connection that wrote the file is closed.
    """
    conn = sqlite3.connect(path)
    try:
        # Fold the WAL back into the main file and empty it, so the file size is the data.
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        count, blob, meta = conn.execute(
            "SELECT count(*), coalesce(sum(length(checkpoint)), 0), "
            "coalesce(sum(length(metadata)), 0) FROM checkpoints"
        ).fetchone()
        writes, event_writes = conn.execute(
            "SELECT coalesce(sum(length(value)), 0), "
            "coalesce(sum(CASE WHEN channel = 'events' THEN length(value) END), 0) FROM writes"
        ).fetchone()
        snapshots = snapshot_bytes = values_bytes = versions_bytes = 0
        for type_, data in conn.execute("SELECT type, checkpoint FROM checkpoints"):
            checkpoint = _LOAD.loads_typed((type_, data))
            values = checkpoint["channel_values"]
            # Re-serialized piecewise, so the parts add up to about the blob, not exactly.
            values_bytes += _size(values)
            versions_bytes += _size(checkpoint["channel_versions"])
            versions_bytes += _size(checkpoint["versions_seen"])
            # A DeltaChannel is absent from channel_values except at a snapshot; an
            # operator.add channel is present in every checkpoint once written.
            if "events" in values:
                snapshots += 1
                snapshot_bytes += _size(values["events"])
    finally:
        conn.close()
    wal = path.with_name(path.name + "-wal")
    file_bytes = path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
    return StorageBytes(
        checkpoints=count,
        checkpoint_blob=blob,
        metadata=meta,
        writes=writes,
        event_writes=event_writes,
        snapshots=snapshots,
        snapshot_bytes=snapshot_bytes,
        values_bytes=values_bytes,
        versions_bytes=versions_bytes,
        file=file_bytes,
    )


class StepModel(BaseChatModel):
    """Calls the no-op tool once a turn for ``steps`` turns, then answers "done".

    ScriptedChatModel keeps a deep copy of every request it served, which for a 2000-step
    run is millions of message copies (quadratic time and memory); storage does not
    depend on the model, so this one only counts the turn.
    """

    steps: int

    @property
    def _llm_type(self) -> str:
        return "bench-steps"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Runnable[Any, AIMessage]:
        return self

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        k = sum(isinstance(m, AIMessage) for m in messages)
        calls = [{"name": "noop", "args": {"i": k}, "id": f"call_{k}_0", "type": "tool_call"}]
        message = AIMessage(
            content="" if k < self.steps else "done",
            tool_calls=calls if k < self.steps else [],
            usage_metadata={"input_tokens": 10, "output_tokens": 5, "total_tokens": 15},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])


def run_agentrt(steps: int, path: Path) -> Measurement:
    """Drive one agentrt run of ``steps`` tool calls, then a final answer, on ``path``."""
    seconds = timed_start(agentrt_runtime(StepModel(steps=steps), path, steps), steps)
    return Measurement(steps=steps, bytes=measure(path), seconds=seconds)


# The baseline ----------------------------------------------------------------------------


class BaselineState(TypedDict):
    """The usual LangGraph way to keep a log: a list channel reduced with operator.add."""

    events: Annotated[list[dict[str, Any]], operator.add]


# Events shaped like agentrt's own (plan, policy verdict, tool outcome, observation), so
# both logs cost about the same bytes per event and only the channel type differs.


def _plan(state: BaselineState) -> dict[str, Any]:
    k = len(state["events"]) // 4
    action = {"step_id": f"{k}.0", "call_id": f"call_{k}_0", "tool": "noop", "args": {"i": k}}
    event = {"type": "plan", "data": {"revision": k, "content": "", "actions": [action]}}
    return {"events": [event]}


def _policy(state: BaselineState) -> dict[str, Any]:
    step_id = f"{len(state['events']) // 4}.0"
    verdict: dict[str, Any] = {
        "step_id": step_id,
        "outcome": "allow",
        "rule_id": None,
        "matched": [],
        "reason": "no rule matched; the policy default is allow",
        "required_role": None,
        "four_eyes": False,
        "expires_in": None,
        "policy": "allow-all",
        "policy_version": "b73c856a60d79291",
    }
    return {"events": [{"type": "policy", "step_id": step_id, "data": verdict}]}


def _tool(state: BaselineState) -> dict[str, Any]:
    k = len(state["events"]) // 4
    outcome = {
        "step_id": f"{k}.0",
        "phase": "done",
        "kind": "ok",
        "content": json.dumps({"i": k, "ok": True}),
    }
    return {"events": [{"type": "outcome", "step_id": f"{k}.0", "data": outcome}]}


def _verify(state: BaselineState) -> dict[str, Any]:
    k = len(state["events"]) // 4
    observation = {
        "step_id": f"{k}.0",
        "call_id": f"call_{k}_0",
        "tool": "noop",
        "kind": "ok",
        "content": json.dumps({"i": k, "ok": True}),
    }
    return {"events": [{"type": "observation", "step_id": f"{k}.0", "data": observation}]}


def _baseline_graph(steps: int, saver: SqliteSaver) -> Any:
    builder: StateGraph[BaselineState, None, BaselineState, BaselineState]
    builder = StateGraph(BaselineState)
    for name, fn in (("plan", _plan), ("policy", _policy), ("tool", _tool), ("verify", _verify)):
        builder.add_node(name, fn)
    builder.add_edge(START, "plan")
    builder.add_edge("plan", "policy")
    builder.add_edge("policy", "tool")
    builder.add_edge("tool", "verify")

    def again(state: BaselineState) -> str:
        return END if len(state["events"]) >= 4 * steps else "plan"

    builder.add_conditional_edges("verify", again, ["plan", END])
    return builder.compile(checkpointer=saver)


def _invoke_baseline(steps: int, saver: SqliteSaver) -> float:
    graph = _baseline_graph(steps, saver)
    config: Any = {"configurable": {"thread_id": "bench"}, "recursion_limit": _RECURSION_LIMIT}
    started = time.perf_counter()
    final = graph.invoke({"events": []}, config, durability="sync")
    seconds = time.perf_counter() - started
    if len(final["events"]) != 4 * steps:
        raise RuntimeError(f"the baseline wrote {len(final['events'])} events, not {4 * steps}")
    return seconds


def run_baseline(steps: int, path: Path) -> Measurement:
    """Run the plain LangGraph graph for ``steps`` four-node cycles on ``path``."""
    if steps > KEEP_LIMIT:
        return _run_baseline_counted(steps)
    conn = sqlite3.connect(path, check_same_thread=False)
    # The same journal settings agentrt's connections use, so file sizes and times compare.
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    try:
        saver = SqliteSaver(conn)
        saver.setup()
        seconds = _invoke_baseline(steps, saver)
    finally:
        conn.close()
    return Measurement(steps=steps, bytes=measure(path), seconds=seconds)


class _CountingSaver(SqliteSaver):
    """SqliteSaver that counts each row as written, then drops all but the newest."""

    checkpoints = blob = meta = writes = event_writes = 0

    def put(self, config: Any, checkpoint: Any, metadata: Any, new_versions: Any) -> Any:
        saved = super().put(config, checkpoint, metadata, new_versions)
        with self.lock:
            n, blob, meta = self.conn.execute(
                "SELECT count(*), sum(length(checkpoint)), sum(length(metadata)) "
                "FROM checkpoints WHERE checkpoint_id = ?",
                (checkpoint["id"],),
            ).fetchone()
            self.checkpoints += n
            self.blob += blob
            self.meta += meta
            # The run goes forward only: nothing reads an older checkpoint or its writes.
            self.conn.execute(
                "DELETE FROM checkpoints WHERE checkpoint_id != ?", (checkpoint["id"],)
            )
            self.conn.commit()
        return saved

    def put_writes(self, config: Any, writes: Any, task_id: str, task_path: str = "") -> None:
        super().put_writes(config, writes, task_id, task_path)
        with self.lock:
            total, events = self.conn.execute(
                "SELECT coalesce(sum(length(value)), 0), "
                "coalesce(sum(CASE WHEN channel = 'events' THEN length(value) END), 0) "
                "FROM writes WHERE task_id = ?",
                (task_id,),
            ).fetchone()
            self.writes += total
            self.event_writes += events
            self.conn.execute("DELETE FROM writes WHERE task_id = ?", (task_id,))
            self.conn.commit()


def _run_baseline_counted(steps: int) -> Measurement:
    saver = _CountingSaver(sqlite3.connect(":memory:", check_same_thread=False))
    saver.setup()
    try:
        seconds = _invoke_baseline(steps, saver)
    finally:
        saver.conn.close()
    counted = StorageBytes(
        checkpoints=saver.checkpoints,
        checkpoint_blob=saver.blob,
        metadata=saver.meta,
        writes=saver.writes,
        event_writes=saver.event_writes,
        snapshots=saver.checkpoints - 1,  # every checkpoint after the input holds the log
        snapshot_bytes=0,
        values_bytes=0,
        versions_bytes=0,
        file=0,
    )
    return Measurement(steps=steps, bytes=counted, seconds=seconds, kept=False)


# Reporting -------------------------------------------------------------------------------


def snapshot_frequency() -> int:
    """The DeltaChannel snapshot_frequency agentrt's RunState declares for ``events``."""
    hint = typing.get_type_hints(RunState, include_extras=True)["events"]
    channel = next(m for m in hint.__metadata__ if isinstance(m, DeltaChannel))
    return int(channel.snapshot_frequency)


def _kib(n: float) -> str:
    return f"{n / 1024:,.1f} KiB"


def _file(m: Measurement) -> str:
    return f"{m.file_per_step:,.0f}" if m.kept else "not kept"


def _table(results: list[tuple[Measurement, Measurement]]) -> list[str]:
    rows = [
        "| steps | agentrt bytes/step | baseline bytes/step | agentrt / baseline "
        "| agentrt file/step | baseline file/step | agentrt time | baseline time |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for ours, base in results:
        rows.append(
            f"| {ours.steps} | {ours.per_step:,.0f} | {base.per_step:,.0f} "
            f"| {ours.per_step / base.per_step:.3f} | {_file(ours)} | {_file(base)} "
            f"| {ours.seconds:.1f} s | {base.seconds:.1f} s |"
        )
    first, last = results[0], results[-1]
    rows.append(
        f"| growth {first[0].steps} -> {last[0].steps} "
        f"| x{last[0].per_step / first[0].per_step:.2f} "
        f"| x{last[1].per_step / first[1].per_step:.2f} | | | | | |"
    )
    return rows


def _breakdown(results: list[tuple[Measurement, Measurement]]) -> list[str]:
    rows = [
        "| run | steps | checkpoints | checkpoint blobs | ~ state values | ~ versions "
        "| metadata | writes (of which events) | whole-log copies | bytes in them |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for pair in results:
        for label, m in zip(("agentrt", "baseline"), pair, strict=True):
            b = m.bytes
            decoded = m.kept  # the parts below need the rows, decoded
            rows.append(
                f"| {label} | {m.steps} | {b.checkpoints:,} | {_kib(b.checkpoint_blob)} "
                f"| {_kib(b.values_bytes) if decoded else '-'} "
                f"| {_kib(b.versions_bytes) if decoded else '-'} | {_kib(b.metadata)} "
                f"| {_kib(b.writes)} ({_kib(b.event_writes)}) "
                f"| {b.snapshots:,} | {_kib(b.snapshot_bytes) if decoded else '-'} |"
            )
    return rows


def main() -> Report:
    """Run the storage benchmark, print its results, and return its rows and tables."""
    results: list[tuple[Measurement, Measurement]] = []
    with tempfile.TemporaryDirectory(prefix="agentrt-bench-") as tmp:
        for steps in STEPS:
            ours = run_agentrt(steps, Path(tmp, f"agentrt-{steps}.db"))
            base = run_baseline(steps, Path(tmp, f"baseline-{steps}.db"))
            results.append((ours, base))
            print(
                f"  {steps} steps: agentrt {ours.per_step:,.0f} B/step in {ours.seconds:.1f} s, "
                f"baseline {base.per_step:,.0f} B/step in {base.seconds:.1f} s",
                flush=True,
            )
            # Drop each pair's files as soon as they are measured: the 500-step baseline
            # alone is hundreds of megabytes.
            for f in Path(tmp).iterdir():
                f.unlink()

    freq = snapshot_frequency()
    first, last = results[0], results[-1]
    rows = [
        Row.of(
            "storage",
            f"checkpoint bytes per step, {ours.steps}-step run",
            [ours.per_step],
            "LangGraph state with an operator.add list",
            [base.per_step],
        )
        for ours, base in results
    ]
    lines = [
        "Bytes/step = table content (`length()` of `checkpoints.checkpoint`, "
        "`checkpoints.metadata` and `writes.value`) / steps; file/step = SQLite file size "
        "after `PRAGMA wal_checkpoint(TRUNCATE)` / steps. One run each, no median: bytes are "
        "deterministic but for the baseline's random channel-version suffixes (SqliteSaver's "
        "own), which vary in length and move bytes/step by under 1% between runs. agentrt "
        "stores its checkpoints compact (short versions, values deflated). Baseline runs "
        "longer than "
        f"{KEEP_LIMIT} steps are counted row by row as SqliteSaver writes them to an "
        "in-memory database and pruned behind (kept, the 2000-step one would be about "
        "4 GB), so they have no file size and no decoded breakdown.",
        "",
        *_table(results),
        "",
        f"agentrt's `events` DeltaChannel has snapshot_frequency={freq} (counted in channel "
        "updates: 3 events a step, so a whole-log snapshot about every "
        f"{freq // 3} steps). Where the bytes go (state values and versions are the blobs' "
        "channel_values and channel_versions + versions_seen, re-serialized apart as "
        "LangGraph's msgpack before agentrt deflates them, so approximate; whole-log "
        "copies are the checkpoints whose blob holds the whole event log: agentrt's "
        "snapshots, the baseline's every checkpoint):",
        "",
        *_breakdown(results),
        "",
        f"Event log as written (the `events` writes) per step: agentrt "
        f"{last[0].bytes.event_writes / last[0].steps:,.0f} B in 3 events "
        f"(plan, policy, observation), baseline "
        f"{last[1].bytes.event_writes / last[1].steps:,.0f} B in 4 events (one per node).",
        "",
        f"Flat bytes/step means linear total storage: agentrt x"
        f"{last[0].per_step / first[0].per_step:.2f} from {first[0].steps} to "
        f"{last[0].steps} steps, the operator.add baseline x"
        f"{last[1].per_step / first[1].per_step:.2f} (quadratic total).",
    ]
    print("\n".join(lines))
    return Report(rows=rows, notes="\n".join(lines))


if __name__ == "__main__":
    main()
