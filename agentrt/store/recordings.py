"""What the store keeps for observing runs: trace ids, spans, recorded model calls, pruning.

Kept beside the Store rather than in it: these tables serve tracing and replay, and a run
works the same without reading them.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from agentrt.state import TERMINAL
from agentrt.store.sqlite import Store

__all__ = [
    "ModelCall",
    "SpanRow",
    "delete_run",
    "model_calls",
    "prunable_runs",
    "record_model_call",
    "run_trace",
    "set_trace",
    "spans_of",
]


@dataclass(frozen=True, slots=True)
class ModelCall:
    """One recorded model response of a run."""

    revision: int
    """The plan revision it produced (0 for the first plan)."""
    model: str | None
    request_digest: str
    """sha256 of the messages the model was sent."""
    response: dict[str, Any]
    """The AIMessage, as langchain_core.load.dumpd wrote it."""


@dataclass(frozen=True, slots=True)
class SpanRow:
    """One stored span."""

    span_id: str
    trace_id: str
    parent_id: str | None
    thread_id: str | None
    name: str
    start_ns: int
    end_ns: int | None
    status: str
    attributes: dict[str, Any]
    events: list[dict[str, Any]]
    links: list[dict[str, Any]]


def run_trace(store: Store, thread_id: str) -> tuple[str | None, str | None]:
    """The run's trace id and the span id of its last agent.run segment."""
    with store._lock:
        row = store._conn.execute(
            "SELECT trace_id, trace_span_id FROM runs WHERE thread_id=?", (thread_id,)
        ).fetchone()
    return (row["trace_id"], row["trace_span_id"]) if row else (None, None)


def set_trace(store: Store, thread_id: str, trace_id: str, span_id: str | None) -> None:
    """Remember the run's trace id and the agent.run span the next segment links to."""
    with store._tx() as db:
        db.execute(
            "UPDATE runs SET trace_id=?, trace_span_id=? WHERE thread_id=?",
            (trace_id, span_id, thread_id),
        )


def record_model_call(
    store: Store,
    thread_id: str,
    revision: int,
    *,
    model: str | None,
    request_digest: str,
    response: dict[str, Any],
) -> None:
    """Keep a model response; a re-run of the same plan step replaces it (the newer one won)."""
    with store._tx() as db:
        db.execute(
            "INSERT OR REPLACE INTO model_calls (thread_id, revision, model, request_digest, "
            "response, created_at) VALUES (?,?,?,?,?,?)",
            (
                thread_id,
                revision,
                model,
                request_digest,
                json.dumps(response, default=str),
                store.clock(),
            ),
        )


def model_call(store: Store, thread_id: str, revision: int) -> ModelCall | None:
    """The recorded response that produced plan ``revision`` of a run, if there is one."""
    with store._lock:
        row = store._conn.execute(
            "SELECT * FROM model_calls WHERE thread_id=? AND revision=?", (thread_id, revision)
        ).fetchone()
    return _model_call(row) if row else None


def model_calls(store: Store, thread_id: str) -> list[ModelCall]:
    with store._lock:
        rows = store._conn.execute(
            "SELECT * FROM model_calls WHERE thread_id=? ORDER BY revision", (thread_id,)
        ).fetchall()
    return [_model_call(r) for r in rows]


def _model_call(row: sqlite3.Row) -> ModelCall:
    return ModelCall(
        revision=row["revision"],
        model=row["model"],
        request_digest=row["request_digest"],
        response=json.loads(row["response"]),
    )


def spans_of(store: Store, trace_id: str) -> list[SpanRow]:
    """Every stored span of a trace, in start order."""
    with store._lock:
        rows = store._conn.execute(
            "SELECT * FROM spans WHERE trace_id=? ORDER BY start_ns, rowid", (trace_id,)
        ).fetchall()
    return [
        SpanRow(
            span_id=r["span_id"],
            trace_id=r["trace_id"],
            parent_id=r["parent_id"],
            thread_id=r["thread_id"],
            name=r["name"],
            start_ns=r["start_ns"],
            end_ns=r["end_ns"],
            status=r["status"],
            attributes=json.loads(r["attributes"]),
            events=json.loads(r["events"]),
            links=json.loads(r["links"]),
        )
        for r in rows
    ]


def prunable_runs(store: Store, *, before: float, keep_latest: int = 0) -> list[str]:
    """Finished runs last updated before ``before``, except the newest ``keep_latest`` runs.

    Only terminal runs qualify: a run waiting at a gate, running, or stopped by a crash
    can still go on, and pruning it would lose what it needs.
    """
    terminal = sorted(s.value for s in TERMINAL)
    marks = ",".join("?" * len(terminal))
    with store._lock:
        newest = {
            r["thread_id"]
            for r in store._conn.execute(
                "SELECT thread_id FROM runs ORDER BY created_at DESC, thread_id LIMIT ?",
                (max(0, keep_latest),),
            )
        }
        rows = store._conn.execute(
            f"SELECT thread_id FROM runs WHERE status IN ({marks}) AND updated_at < ? "
            "ORDER BY created_at, thread_id",
            (*terminal, before),
        ).fetchall()
    return [r["thread_id"] for r in rows if r["thread_id"] not in newest]


def delete_run(store: Store, thread_id: str) -> None:
    """Delete a run's row (approvals, effects and model calls cascade) and its spans."""
    with store._tx() as db:
        trace = db.execute("SELECT trace_id FROM runs WHERE thread_id=?", (thread_id,)).fetchone()
        db.execute("DELETE FROM spans WHERE thread_id=?", (thread_id,))
        if trace is not None and trace["trace_id"]:
            db.execute("DELETE FROM spans WHERE trace_id=?", (trace["trace_id"],))
        db.execute("DELETE FROM runs WHERE thread_id=?", (thread_id,))
