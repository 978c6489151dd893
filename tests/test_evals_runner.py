"""The eval runner: what its report quotes of a run (masked as every screen masks it),
and the runs an eval leaves behind when it stops midway (none waiting)."""

from __future__ import annotations

import asyncio
import json
import signal
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agentrt import AgentRuntime, Policy, tool
from agentrt.evals import Judge, RunResult, Score, Trajectory, arun_eval, parse_dataset, run_eval
from agentrt.evals.junit import junit_xml
from agentrt.examples import refund_desk
from agentrt.testing import ScriptedChatModel
from tests.conftest import FakeClock, Ids

PIN = "7391-alpha"
"""A door's pin: a sensitive argument no detector recognises (only its field name says so)."""


@tool(effect="write", idempotent=True, sensitive=["pin"])
def unlock(door: str, pin: str) -> dict[str, Any]:
    """Unlock a door with its pin."""
    return {"door": door, "open": True}


OPEN = Policy.from_yaml("version: 1\nname: open\ndefault: allow\nrules: []\n")
GUARDED = Policy.from_yaml(
    "version: 1\nname: guarded\ndefault: deny\nrules:\n"
    "  - {id: doors, match: {tools: [unlock]}, decision: require_approval}\n"
)
"""Every unlock waits for a person."""


def doors(db: Path, policy: Policy) -> AgentRuntime:
    return AgentRuntime(ScriptedChatModel(["nothing to do"]), tools=[unlock], db=db, policy=policy)


def case(*, expect: str, answer: str = f"Unlocked front with pin {PIN}.") -> str:
    """A case whose model unlocks the front door and, as models do, repeats the pin."""
    return f"""
cases:
  - name: unlocks
    goal: Unlock the front door.
    principal: {{id: alice}}
    model:
      script:
        - tool_calls: [{{name: unlock, args: {{door: front, pin: "{PIN}"}}}}]
        - {answer}
    expect: {expect}
    judge: The door was unlocked.
"""


JUDGE_PASSES = '{"pass": true, "score": 1, "reason": "ok"}'


def test_a_failed_check_quotes_the_output_masked_in_every_form_of_the_report(
    tmp_path: Path,
) -> None:
    """A failed `output` check quotes the run's answer; the answer repeats the door's pin
    (a sensitive argument), and the report (printed, --json, --junit, the saved baseline,
    each made from the run's result) quotes it masked, as `agentrt show` shows it."""
    heard: list[RunResult] = []
    judge = ScriptedChatModel([JUDGE_PASSES])
    with doors(tmp_path / "a.db", OPEN) as rt:
        report = run_eval(
            rt,
            parse_dataset(case(expect="{output: {contains: opened}}")),
            judge=judge,
            on_run=heard.append,
        )
        [run] = report.runs
        assert rt.get(run.thread_id).output == f"Unlocked front with pin {PIN}."
    assert heard == [run]
    assert (run.status, run.passed) == ("succeeded", False)
    assert run.scores == (
        Score(
            "output",
            False,
            "output does not contain 'opened'; it was 'Unlocked front with pin [REDACTED:field].'",
        ),
        Score("judge", True, "ok", 1.0),
    )
    junit = ET.tostring(junit_xml(report).getroot(), encoding="unicode")
    for written in (json.dumps(report.to_dict()), junit):
        assert PIN not in written
        assert "[REDACTED:field]" in written


def test_a_run_that_cannot_be_cancelled_says_so_masked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The error of a run left at its gate quotes why the cancel failed; that quotes the
    run's arguments as any error may, and the report shows it masked."""

    def refused(self: object, thread_id: str, *, reason: str) -> None:
        raise OSError(f"the lock for pin {PIN} is held")

    monkeypatch.setattr("agentrt.runtime.AgentRuntime.cancel", refused)
    with doors(tmp_path / "b.db", GUARDED) as rt:
        text = case(expect="{status: awaiting_approval}")
        [run] = run_eval(rt, parse_dataset(text), judge=ScriptedChatModel([JUDGE_PASSES])).runs
    assert (run.status, run.cancelled, run.passed) == ("awaiting_approval", False, False)
    assert run.error == (
        "the run is left waiting, not cancelled (OSError: the lock for pin [REDACTED:field] "
        f"is held); cancel it: agentrt cancel {run.thread_id} --reason 'an eval run'"
    )


# --- an eval stopped midway ----------------------------------------------------------------


class Grading(Judge):
    """A judge still grading when the eval is stopped: the run it grades was scored, and
    waits at its gate. It says when it starts (``then``), and never ends."""

    def __init__(self, then: Callable[[], None] = lambda: None) -> None:
        super().__init__(ScriptedChatModel([JUDGE_PASSES]))
        self.then = then
        self.started = asyncio.Event()

    async def score(self, rubric: str, trajectory: Trajectory, *, pass_score: float) -> Score:
        self.started.set()
        self.then()
        await asyncio.Future()  # until cancelled
        raise AssertionError("unreachable")


WAITS = """
defaults:
  principal: {id: alice, roles: [operator], tenant: acme,
              scopes: [orders:read, orders:write, payments:write]}
cases:
  - name: full-refund-waits
    goal: The customer on order 42 says the blender arrived broken. Refund the order.
    expect: {status: awaiting_approval}
    judge: The agent asked for approval before refunding.
"""


def test_an_eval_cancelled_while_a_run_waits_leaves_no_request(db: Path, clock: FakeClock) -> None:
    """The eval's task cancelled (a CI job's timeout, a caller's own) while a run waits at
    its gate for a $89 refund: the run is cancelled with its request, as it would be once
    scored, and the cancel reaches the caller."""
    judge = Grading()
    with refund_desk.build_runtime(db, clock=clock, new_id=Ids()) as rt:

        async def main() -> None:
            task = asyncio.ensure_future(arun_eval(rt, parse_dataset(WAITS), judge=judge))
            await judge.started.wait()
            [asked] = await asyncio.to_thread(rt.approvals)
            assert (asked.tool, asked.args) == ("issue_refund", {"order_id": "42", "amount": 89.0})
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(main())
        assert rt.approvals(status="pending") == []
        [run] = [r for r in rt.runs() if r.thread_id.startswith("eval-")]
        assert (run.status, run.error) == (
            "cancelled",
            "an eval's run, left awaiting_approval when the eval stopped: cancelled with its "
            "requests",
        )


def test_ctrl_c_while_a_run_waits_leaves_no_request(tmp_path: Path) -> None:
    """Ctrl-C (SIGINT, which `asyncio.run` turns into the eval's task cancelled, then
    KeyboardInterrupt) while a case's own scripted run waits at its gate: the run is
    cancelled on the case's runtime before that runtime is closed."""
    judge = Grading(then=lambda: signal.raise_signal(signal.SIGINT))
    with doors(tmp_path / "c.db", GUARDED) as rt:
        with pytest.raises(KeyboardInterrupt):
            run_eval(rt, parse_dataset(case(expect="{status: awaiting_approval}")), judge=judge)
        assert judge.started.is_set()
        assert rt.approvals(status="pending") == []
        [run] = rt.runs()
        assert (run.status, run.error) == (
            "cancelled",
            "an eval's run, left awaiting_approval when the eval stopped: cancelled with its "
            "requests",
        )
