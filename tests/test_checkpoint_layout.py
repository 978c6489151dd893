"""Checkpoints as the SQLite store writes them: short versions, values deflated, and what
the layout before it wrote still read and carried on."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.sqlite import SqliteSaver

from agentrt import Decision, RunStatus
from agentrt.graphs.stepping import changed
from agentrt.store.sqlite import checkpoints
from agentrt.store.sqlite.compact import CODEC, CompactSerializer, Deflate
from agentrt.store.versions import next_version
from tests.conftest import FakeClock
from tests.gate_app import GOAL, OPS, PAYER, T0, build_runtime, paid


def _types(db: Path) -> tuple[set[str], set[str]]:
    """The value types of the checkpoints table, and of the writes table."""
    with sqlite3.connect(db) as conn:
        blobs = {t for (t,) in conn.execute("SELECT DISTINCT type FROM checkpoints")}
        writes = {t for (t,) in conn.execute("SELECT DISTINCT type FROM writes")}
    return blobs, writes


def test_versions_sort_as_text_in_the_order_they_are_made() -> None:
    made, current = [], None
    for _ in range(12_000):
        current = next_version(current)
        made.append(current)
    assert made[:3] == ["a1", "a2", "a3"]
    assert (made[8], made[9], made[99], made[9_999]) == ("a9", "b10", "c100", "e10000")
    assert sorted(made) == made
    # LangGraph compares a channel's version with the empty one of its type.
    assert made[0] > ""


def test_a_version_sqlitesaver_wrote_sorts_below_and_its_count_goes_on() -> None:
    saver = SqliteSaver(sqlite3.connect(":memory:"))
    old = saver.get_next_version(saver.get_next_version(None, None), None)  # count 2
    assert len(old) > 30
    assert next_version(old) == "a3"
    assert old < next_version(old) < next_version(next_version(old))


def test_a_run_is_checkpointed_deflated_and_reads_back(tmp_path: Path) -> None:
    db = tmp_path / "agentrt.db"
    with build_runtime(db, clock=FakeClock(T0)) as rt:
        run = rt.start(GOAL, principal=OPS)
        assert run.status is RunStatus.AWAITING_APPROVAL
        state = rt.graph.get_state({"configurable": {"thread_id": run.thread_id}})
    blobs, writes = _types(db)
    assert blobs == {f"msgpack+{CODEC}"}
    assert f"msgpack+{CODEC}" in writes
    assert state.values["goal"] == GOAL
    assert state.values["principal"]["id"] == OPS.id


def test_deflate_pays_only_where_it_shortens_and_round_trips() -> None:
    serde = CompactSerializer()
    usage = {"input_tokens": 10, "output_tokens": 2, "cost_usd": 0.0, "tool_calls": 1}
    usage |= {"steps": 1, "active_seconds": 0.25}
    plain = JsonPlusSerializer().dumps_typed(usage)
    type_, packed = serde.dumps_typed(usage)
    assert (type_, len(packed) < len(plain[1]) // 2) == (f"msgpack+{CODEC}", True)
    assert serde.loads_typed((type_, packed)) == usage
    assert serde.dumps_typed("policy") == ("msgpack", JsonPlusSerializer().dumps_typed("policy")[1])
    assert serde.loads_typed(plain) == usage  # as the layout before stored it


def test_a_value_in_a_codec_this_version_lacks_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"stored as 'z9'.*reads 'z1'"):
        Deflate().decrypt("z9", b"")


def test_a_run_stopped_at_a_gate_under_the_layout_before_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The layout before: SqliteSaver's 49-character versions, its plain msgpack values.
    db = tmp_path / "agentrt.db"
    with monkeypatch.context() as before:
        before.setattr(checkpoints, "CompactSerializer", JsonPlusSerializer)
        before.setattr(checkpoints.Checkpoints, "get_next_version", SqliteSaver.get_next_version)
        with build_runtime(db, clock=FakeClock(T0)) as rt:
            run = rt.start(GOAL, principal=OPS)
            al, cy = (r.id for r in run.pending_approvals)
            rt.decide(Decision.approve(al, by=PAYER))
    assert _types(db)[0] == {"msgpack"}
    assert paid(db) == []

    with build_runtime(db, clock=FakeClock(T0)) as rt:
        done = rt.decide(Decision.approve(cy, by=PAYER))
        assert done.status is RunStatus.SUCCEEDED
        assert rt.get(run.thread_id).usage["tool_calls"] == 3
    assert paid(db) == [("al", 5000), ("bo", 200), ("cy", 9000)]
    assert _types(db)[0] == {"msgpack", f"msgpack+{CODEC}"}


def test_a_node_s_route_goes_with_its_command_not_into_the_state(tmp_path: Path) -> None:
    # Where a node sends the run is checkpointed by LangGraph as the Command's branch; a
    # route channel written at every node would cost every checkpoint a version and a write.
    db = tmp_path / "agentrt.db"
    with build_runtime(db, clock=FakeClock(T0)) as rt:
        run = rt.start(GOAL, principal=OPS)
        assert run.status is RunStatus.AWAITING_APPROVAL
    with sqlite3.connect(db) as conn:
        channels = {c for (c,) in conn.execute("SELECT DISTINCT channel FROM writes")}
    assert "branch:to:approval" in channels  # the routes taken, as LangGraph keeps them
    assert "route" not in channels


def test_a_value_the_state_already_holds_is_not_written_again(tmp_path: Path) -> None:
    # The run starts with status running, cursor 0 and no outcome; plan sets them to the
    # same again. Each write would cost the checkpoint a version and a row.
    db = tmp_path / "agentrt.db"
    with build_runtime(db, clock=FakeClock(T0)) as rt:
        rt.start(GOAL, principal=OPS)
    with sqlite3.connect(db) as conn:
        writes = dict(conn.execute("SELECT channel, count(*) FROM writes GROUP BY channel"))
    assert (writes["status"], writes["cursor"], writes["outcome"]) == (1, 1, 1)
    # The log's batches, each new: plan's with policy's (run in plan's step), approval's.
    assert writes["events"] == 2


def test_an_update_keeps_only_what_changes() -> None:
    state: Any = {"status": "running", "verdict": None, "cursor": 2, "events": [{"type": "plan"}]}
    update = {
        "status": "running",  # as it is: dropped
        "verdict": None,  # as it is: dropped
        "cursor": 3,  # changed
        "outcome": None,  # not in the state yet: written
        "events": [],  # nothing to append: dropped
        "route": "plan",  # where the Command goes: kept for it
    }
    assert changed(update, state) == {"cursor": 3, "outcome": None, "route": "plan"}
    assert changed({"events": [{"type": "policy"}]}, state) == {"events": [{"type": "policy"}]}
    # The log is appended to: a batch equal to the whole log so far is still new.
    assert changed({"events": [{"type": "plan"}]}, state) == {"events": [{"type": "plan"}]}


def test_keys_a_run_leaves_unset_read_as_their_default_and_are_never_stored(
    tmp_path: Path,
) -> None:
    # A gate's, a follow-up's, a summary's keys stay unset for most runs: they read as
    # what reading them unset gave, cost no version nor row, and hold a value once written.
    db = tmp_path / "agentrt.db"
    with build_runtime(db, clock=FakeClock(T0)) as rt:
        run = rt.start(GOAL, principal=OPS)
        assert run.status is RunStatus.AWAITING_APPROVAL
        values = rt.graph.get_state({"configurable": {"thread_id": run.thread_id}}).values
        ids = [r.id for r in run.pending_approvals]
        for request_id in ids:
            rt.decide(Decision.approve(request_id, by=PAYER))
        values_after = rt.graph.get_state({"configurable": {"thread_id": run.thread_id}}).values
    unset = {
        "checking": "",
        "rechecks": 0,
        "message": 0,
        "message_budget": None,
        "summary": None,
        "gate_decisions": None,
    }
    assert {k: values[k] for k in unset} == {**unset, "checking": values["checking"]}
    assert values["checking"] == "0.0"  # written by policy: a value like any other
    assert values["gate"]  # written at the gate
    assert values_after["answered"] in ids  # written by the approval node
    with sqlite3.connect(db) as conn:
        written = {c for (c,) in conn.execute("SELECT DISTINCT channel FROM writes")}
    assert not written & {"message", "message_budget", "summary", "gate_decisions"}


def test_a_key_left_unset_reads_as_its_default_in_each_node() -> None:
    from langgraph.channels.last_value import LastValue

    from agentrt.state import Unset

    channel = Unset(int, default=0)
    nothing = LastValue(int).checkpoint()  # what an unset channel stores: nothing
    restored = channel.from_checkpoint(nothing)
    assert (restored.get(), restored.is_available()) == (0, True)
    assert restored.checkpoint() is nothing
    assert restored.update([7]) is True
    copied = restored.copy()
    assert (copied.get(), copied.default, copied.checkpoint()) == (7, 0, 7)
    assert channel.from_checkpoint(5).get() == 5  # as the layout before stored it
