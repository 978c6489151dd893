"""How often driving a run goes to its row: a segment works from the row it read holding the
lease (agentrt.runs.driver), so it does not read the row again for each status move or for
its trace, renews a lease it claimed rather than reading and retaking it, and lets the
lease go once, in the same write that records where the segment's span is. On PostgreSQL
each of these is a round trip and a transaction of the server's; counted here on each
backend through the store's own methods."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentrt import AgentRuntime, Decision
from agentrt.runs.lease import LeaseOwner
from agentrt.steps import drive
from tests import worker_app

COUNTED = (
    "get_run",
    "run_trace",
    "lease_of",
    "take_lease",
    "renew_leases",
    "hold_lease",
    "set_trace",
    "release_lease",
)


@pytest.fixture(params=["sqlite", "postgres"])
def rt(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[AgentRuntime]:
    monkeypatch.setenv("WORKER_APP_SINK", str(tmp_path / "sink.db"))
    db = (
        str(request.getfixturevalue("postgres_url"))
        if request.param == "postgres"
        else str(tmp_path / "agentrt.db")
    )
    with worker_app.build_runtime(db) as runtime:
        yield runtime


def counting(rt: AgentRuntime, monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Count the runtime's calls of the store's row and lease methods from now on (not the
    store's own: SQLite reads a moved row back inside the write's transaction)."""
    calls: Counter[str] = Counter()
    for name in COUNTED:
        method = getattr(rt.store, name)

        def counted(*args: Any, _name: str = name, _method: Any = method, **kw: Any) -> Any:
            if not sys._getframe(1).f_globals["__name__"].startswith("agentrt.store."):
                calls[_name] += 1
            return _method(*args, **kw)

        monkeypatch.setattr(rt.store, name, counted)
    return calls


def test_a_claimed_run_goes_to_its_row_only_where_it_must(
    rt: AgentRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    thread_id = rt.create("note 2", principal=worker_app.OPS).thread_id
    owner = LeaseOwner.this_process("claimer")
    driver = rt._driver
    claim = rt.store.claim_runs(driver.lease_for(owner), now=rt.store.clock(), limit=1)
    assert claim.thread_ids == (thread_id,)
    calls = counting(rt, monkeypatch)
    checkpointer = rt._opened.checkpointer
    read = checkpointer.get_tuple

    def get_tuple(*args: Any, **kw: Any) -> Any:
        calls["checkpoint reads"] += 1
        return read(*args, **kw)

    monkeypatch.setattr(checkpointer, "get_tuple", get_tuple)
    run = drive(driver.take_over(thread_id, owner))
    assert run.status.value == "succeeded"
    # A run never begun has no checkpoint to look at: only the graph reads its own, once.
    assert calls.pop("checkpoint reads") == 1
    # The row read once to see what the run needs (whether a message waits for the finished
    # run is asked of the messages alone); as the segment begins, the claimed lease renewed
    # and the row read in one write (the moves to running and to succeeded start from that
    # row); let go once, with the trace.
    assert dict(calls) == {"get_run": 1, "hold_lease": 1, "release_lease": 1}
    record = rt.store.get_run(thread_id)
    assert record is not None
    assert (record.lease_owner, record.trace_span_id is not None) == (None, True)


def test_a_run_started_here_and_resumed_after_its_gate_is_one_trace(
    rt: AgentRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = rt.start("pay 500", principal=worker_app.OPS)
    assert run.status.value == "awaiting_approval"
    first = rt.store.get_run(run.thread_id)
    assert first is not None
    assert first.trace_span_id is not None
    calls = counting(rt, monkeypatch)
    [request] = run.pending_approvals
    done = rt.decide(Decision.approve(request.id, by=worker_app.PAYER))
    assert done.status.value == "succeeded"
    assert (calls["run_trace"], calls["set_trace"], calls["lease_of"]) == (0, 0, 1)
    # The resume took the lease, which it did not hold: no renewal tried first.
    assert (calls["take_lease"], calls["hold_lease"]) == (1, 0)
    after = rt.store.get_run(run.thread_id)
    assert after is not None
    assert after.trace_span_id not in (None, first.trace_span_id)
    spans = {s.span_id: s for s in rt.store.spans_of(first.trace_id or "")}
    root, later = spans[first.trace_span_id], spans[after.trace_span_id]
    # The first segment is the run's root; the second hangs under it and links to it.
    assert (root.parent_id, later.parent_id) == (None, root.span_id)
    assert root.span_id in str(later.links)
