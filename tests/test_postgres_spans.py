"""A batch of spans on PostgreSQL: one round trip to the server, and a batch that fails
leaves its error raised and its connection as it found it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import pq

from agentrt.records import SpanRow
from agentrt.store.postgres import PostgresStore


def _span(span_id: str, **changed: Any) -> SpanRow:
    fields: dict[str, Any] = {
        "span_id": span_id,
        "trace_id": "t" * 32,
        "parent_id": None,
        "thread_id": None,
        "name": "agent.run",
        "start_ns": 1,
        "end_ns": None,
        "status": "OK",
        "attributes": {"quoted": 'say "é"', "n": 2**40},
        "events": [],
        "links": [],
    }
    return SpanRow(**{**fields, **changed})


@pytest.fixture
def store(postgres_url: str) -> Iterator[PostgresStore]:
    opened = PostgresStore(postgres_url)
    yield opened
    opened.close()


def test_a_batch_of_spans_is_one_round_trip(store: PostgresStore, tmp_path: Path) -> None:
    store.write_spans([_span("warm")])  # the statement prepared on the pool's connection
    log = tmp_path / "libpq.trace"
    taken = store.db.pool.connection

    @contextmanager
    def traced(*args: Any, **kwargs: Any) -> Iterator[Any]:
        with taken(*args, **kwargs) as conn, log.open("w") as out:
            conn.pgconn.trace(out.fileno())
            conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
            try:
                yield conn
            finally:
                conn.pgconn.untrace()

    store.db.pool.connection = traced  # type: ignore[method-assign]
    store.write_spans([_span("a"), _span("b", end_ns=3)])
    store.db.pool.connection = taken  # type: ignore[method-assign]
    # The server answers once: BEGIN, the lock wait, the upsert and COMMIT went together.
    assert log.read_text().count("ReadyForQuery") == 1
    stored = {s.span_id: s for s in store.spans_of("t" * 32)}
    assert stored["a"].attributes == {"quoted": 'say "é"', "n": 2**40}
    assert (stored["a"].end_ns, stored["b"].end_ns) == (None, 3)


def test_a_batch_that_fails_raises_and_leaves_the_connection_idle(store: PostgresStore) -> None:
    with pytest.raises(psycopg.errors.NotNullViolation):
        store.write_spans([_span("x", name=None)])
    with store.db.pool.connection() as conn:  # the one the batch had: the pool holds one
        assert conn.info.transaction_status == pq.TransactionStatus.IDLE
        assert conn.pgconn.pipeline_status == pq.PipelineStatus.OFF
        assert conn.execute("SHOW lock_timeout").fetchone() == {"lock_timeout": "0"}
    store.write_spans([_span("y")])
    assert [s.span_id for s in store.spans_of("t" * 32)] == ["y"]
