"""A run whose process died after the model answered, before the plan step's checkpoint,
then sent an interrupting message or cancelled before anyone resumed it: the answer paid
for is neither asked for again nor dropped from the run's usage."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from agentrt import Principal, RunStatus
from agentrt.tools import ledger
from tests.crashy_app import build_runtime, killed_at, sink_path

OPS = Principal("ops")

pytestmark = pytest.mark.subprocess


def _asks(db: Path) -> int:
    with sqlite3.connect(sink_path(db)) as conn:
        return int(conn.execute("SELECT count(*) FROM asks").fetchone()[0])


def test_an_interrupting_message_waits_for_the_answer_already_paid_for(tmp_path: Path) -> None:
    db = tmp_path / "agentrt.db"
    killed_at(db, "answered")
    with build_runtime(db) as rt:
        paid = rt.get("t-crash").usage
        run = rt.send("t-crash", "that is enough", principal=OPS, double_texting="interrupt")
        assert run.status is RunStatus.SUCCEEDED
        plans = [e["data"]["revision"] for e in rt.events("t-crash") if e["type"] == "plan"]
        usage = rt.get("t-crash").usage
    assert _asks(db) == 1  # turn 2's answer was recorded before the crash: used, not asked
    assert plans[:2] == [0, 1]  # turn 2 planned from its answer before the message was taken
    assert usage["steps"] > paid["steps"]
    assert usage["input_tokens"] > paid["input_tokens"]


def test_a_cancel_keeps_the_answer_already_paid_for_in_the_usage(tmp_path: Path) -> None:
    db = tmp_path / "agentrt.db"
    killed_at(db, "answered")
    with build_runtime(db) as rt:
        paid = rt.get("t-crash").usage  # the row counted turn 2 as it was recorded
        assert paid["steps"] == 2
        run = rt.cancel("t-crash", reason="not needed")
        assert run.status is RunStatus.CANCELLED
        assert run.usage["steps"] == paid["steps"]
        assert run.usage["input_tokens"] == paid["input_tokens"]


def _charges(db: Path) -> list[str]:
    with sqlite3.connect(sink_path(db)) as conn:
        return [r[0] for r in conn.execute("SELECT who FROM calls ORDER BY n")]


IN_DOUBT = (
    "'charge' (step 0.0, attempt 1) started and recorded no outcome, so it may have "
    "acted: check the target system before calling it again"
)


def test_a_cancel_of_a_run_whose_process_died_mid_effect_tells_the_effect_in_doubt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The process died inside al's charge, which takes no idempotency key: it may have
    # acted. The cancel ends the run at once (nothing more is called), and the run's
    # error, log and the ledger keep the effect in doubt for a person to see.
    monkeypatch.setenv("AGENTRT_TEST_NOT_IDEMPOTENT", "1")
    db = tmp_path / "agentrt.db"
    killed_at(db, "tool")
    assert _charges(db) == ["al"]
    with build_runtime(db) as rt:
        run = rt.cancel("t-crash", reason="not needed")
        assert run.status is RunStatus.CANCELLED
        assert run.error is not None
        assert run.error.startswith("not needed; an effect may have happened: ")
        assert IN_DOUBT in run.error, run.error
        told = [e for e in rt.events("t-crash") if e["type"] == "observation"]
        assert [(e["step_id"], e["data"]["tool"], e["data"]["kind"]) for e in told] == [
            ("0.0", "charge", "error")
        ]
        assert IN_DOUBT in told[0]["data"]["content"]
        assert told[0]["data"]["call_id"] != ""  # the model's call it answers
        assert [e.status for e in rt.store.list_effects("t-crash")] == ["started"]
    assert _charges(db) == ["al"]  # not called again


def test_a_cancel_seen_before_the_reconcile_gate_tells_the_effect_in_doubt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The process died inside al's charge (no idempotency key). The resume finds the call
    # in doubt, and an operator's cancel lands just then: seen before the reconcile gate,
    # it ends the run there, and the run's log still tells the effect in doubt.
    monkeypatch.setenv("AGENTRT_TEST_NOT_IDEMPOTENT", "1")
    db = tmp_path / "agentrt.db"
    killed_at(db, "tool")
    with build_runtime(db) as rt:
        found = ledger.outcome_of

        def cancelled_meanwhile(*args: Any, **kwargs: Any) -> Any:
            try:
                return found(*args, **kwargs)
            except ledger.EffectInDoubt:
                asked = rt.cancel("t-crash", reason="not needed")  # this process drives it
                assert asked.cancel_requested == "not needed"
                raise

        monkeypatch.setattr(ledger, "outcome_of", cancelled_meanwhile)
        run = rt.resume("t-crash")
        assert run.status is RunStatus.CANCELLED
        assert run.error is not None
        assert IN_DOUBT in run.error, run.error
        assert rt.approvals(None, thread_id="t-crash") == []  # no gate was reached
        told = [(e["type"], e.get("step_id")) for e in rt.events("t-crash")]
        assert told[-2:] == [("observation", "0.0"), ("finish", None)], told
        assert IN_DOUBT in rt.events("t-crash")[-2]["data"]["content"]
        assert [e.status for e in rt.store.list_effects("t-crash")] == ["started"]
    assert _charges(db) == ["al"]
