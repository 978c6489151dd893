"""A node written as steps: the cancel check shares the worker-thread trip of the node's
first blocking call, and a cancel still comes before any of the node's work. When a node
looks for a stop request at all (agentrt.nodes.stop_watch). How often a tool goes to a
worker thread before it is called. A cancel waits out an unbroken call."""

from __future__ import annotations

import asyncio
import threading
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from agentrt import AgentRuntime, Policy, tool
from agentrt.errors import LeaseLost
from agentrt.graphs.run_graph import _checked
from agentrt.graphs.stepping import if_cancelled, stop_check
from agentrt.nodes.deps import StepStopped
from agentrt.nodes.stop_watch import MARKED_STALE, STALE, StopWatch, stop_asked
from agentrt.nodes.tool import run_action
from agentrt.runs.record import initial_state
from agentrt.steps import Step, Steps, adrive, blocking, drive, unbroken
from agentrt.testing import ScriptedChatModel

STATE: Any = {"thread_id": "t1", "usage": {"steps": 1}}


class _Store:
    def __init__(self, cancel: str | None, interrupt: bool = False, answered: int = -1) -> None:
        self.cancel = cancel
        self.interrupt = interrupt
        self.answered = answered
        self.calls: list[str] = []
        self.mark: object | None = None  # as PostgreSQL keeps none

    def stop_mark(self) -> object | None:
        return self.mark

    def stop_requests(self, thread_id: str) -> tuple[str | None, bool]:
        self.calls.append("check")
        return self.cancel, self.interrupt

    def list_effects(self, thread_id: str) -> list[object]:
        """The run's ledger, which a cancel reads for calls left in doubt: none here."""
        return []

    def model_call(self, thread_id: str, revision: int) -> object | None:
        """The model call recorded at ``revision``: one at ``answered`` and before."""
        self.calls.append(f"recorded {revision}")
        return object() if revision <= self.answered else None


def _deps(store: _Store, watch: StopWatch | None = None) -> Any:
    return cast(
        Any, SimpleNamespace(store=store, stop_watch=watch or StopWatch(), checkpoints=None)
    )


def _node(store: _Store, seen: list[Any], *, fail: bool = False) -> Steps[dict[str, Any]]:
    def first() -> str:
        store.calls.append("first")
        if fail:
            raise ValueError("first call failed")
        return "one"

    try:
        seen.append((yield blocking(first)))
    except ValueError as exc:
        seen.append(str(exc))
    seen.append((yield blocking(lambda: "two")))
    return {"route": "policy"}


def _trips(steps: Steps[dict[str, Any]]) -> tuple[dict[str, Any], int]:
    """Drive ``steps`` on an event loop; its result and the steps it yielded."""
    count = 0

    def counting() -> Steps[dict[str, Any]]:
        nonlocal count
        sent: Any = None
        while True:
            try:
                step = steps.send(sent)
            except StopIteration as done:
                return cast(dict[str, Any], done.value)
            count += 1
            sent = yield step

    return asyncio.run(adrive(counting())), count


def test_the_cancel_check_shares_the_first_calls_trip() -> None:
    store, seen = _Store(None), []
    update, trips = _trips(_checked("plan", STATE, _deps(store), _node(store, seen)))
    assert update == {"route": "policy"}
    assert seen == ["one", "two"]
    assert store.calls == ["check", "first"]
    assert trips == 2  # check and first call in one, then the second call


def test_a_cancel_comes_before_any_of_the_nodes_work() -> None:
    store, seen = _Store("stop it"), []
    update, _ = _trips(_checked("tool", STATE, _deps(store), _node(store, seen)))
    assert update["stop"]["status"] == "cancelled"
    assert update["stop"]["reason"] == "stop it"
    assert store.calls == ["check"]
    assert seen == []


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_the_first_calls_error_reaches_the_node_at_its_yield(driver: str) -> None:
    store, seen = _Store(None), []
    steps = _checked("plan", STATE, _deps(store), _node(store, seen, fail=True))
    update = drive(steps) if driver == "sync" else asyncio.run(adrive(steps))
    assert update == {"route": "policy"}
    assert seen == ["first call failed", "two"]


@pytest.mark.parametrize("cancels", [1, 3])
def test_a_cancel_waits_out_an_unbroken_call_before_the_procedure_hears_of_it(
    cancels: int,
) -> None:
    # A worker thread runs on whatever the loop does: a procedure's cleanup (letting a lease
    # go) comes after the call's write (taking it), not beside it in another thread; with
    # a cancel sent again and again too, as anyio's cancel scopes send it.
    log: list[str] = []
    awaiting: list[asyncio.Future[Any]] = []
    seen_last = threading.Event()

    def call() -> str:
        log.append("call began")
        task = awaiting[0]

        def cancel(times: int) -> None:
            task.cancel()
            after = partial(cancel, times - 1) if times > 1 else seen_last.set
            task.get_loop().call_soon(after)  # once the task has had this cancel

        task.get_loop().call_soon_threadsafe(cancel, cancels)
        assert seen_last.wait(timeout=30)
        log.append("call ended")
        return "taken"

    def procedure() -> Steps[str]:
        try:
            taken: str = yield unbroken(call)
        except asyncio.CancelledError:
            log.append("cancel heard")
            yield unbroken(log.append, "cleaned up")
            raise
        return taken

    async def scenario() -> None:
        awaiting.append(asyncio.ensure_future(adrive(procedure())))
        with pytest.raises(asyncio.CancelledError):
            await awaiting[0]

    asyncio.run(scenario())
    assert log == ["call began", "call ended", "cancel heard", "cleaned up"]


def test_a_node_starting_with_an_awaited_step_is_checked_first() -> None:
    store = _Store(None)

    def node() -> Steps[dict[str, Any]]:
        got = yield Step(lambda: "sync", lambda: asyncio.sleep(0, "awaited"))
        return {"route": got}

    update, trips = _trips(_checked("plan", STATE, _deps(store), node()))
    assert update == {"route": "awaited"}
    assert store.calls == ["check"]
    assert trips == 2


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_verify_looks_again_only_when_a_stop_may_be_new() -> None:
    clock, store = _Clock(), _Store(None)
    deps = _deps(store, StopWatch(clock=clock))
    assert if_cancelled("tool", STATE, deps) is None
    assert if_cancelled("verify", STATE, deps) is None  # looked a moment ago: not again
    assert store.calls == ["check"]
    # policy, where an interrupt would stop the rest of a plan, and the nodes with
    # consequences look every time.
    for kind in ("policy", "tool", "plan"):
        assert if_cancelled(kind, STATE, deps) is None
    assert store.calls == ["check"] * 4
    store.cancel = "enough"  # asked by another process
    clock.now += STALE / 2
    assert if_cancelled("verify", STATE, deps) is None  # not yet looked for
    clock.now += STALE
    assert if_cancelled("verify", STATE, deps) == {
        "stop": {"status": "cancelled", "reason": "enough"},
        "route": "finish",
    }


def _stopped_by(kind: str, deps: Any) -> str:
    """The reason the run is stopped with before a ``kind`` node; fails if it goes on."""
    update = if_cancelled(kind, STATE, deps)
    assert update is not None, f"the run went on into {kind}"
    reason: str = update["stop"]["reason"]
    return reason


def test_a_stop_asked_in_this_process_is_seen_at_the_next_node() -> None:
    clock, store = _Clock(), _Store(None)
    deps = _deps(store, StopWatch(clock=clock))
    assert if_cancelled("tool", STATE, deps) is None
    store.cancel = "withdrawn"
    stop_asked()  # no time passes: the ask itself makes the next look due
    assert _stopped_by("verify", deps) == "withdrawn"
    assert store.calls == ["check", "check"]


def test_an_interrupt_found_where_it_cannot_stop_the_run_makes_the_next_node_look() -> None:
    clock, store = _Clock(), _Store(None, interrupt=True)
    deps = _deps(store, StopWatch(clock=clock))
    # Found before the tool (no interrupt stops a run there), then verify, which would
    # otherwise skip its look this soon, looks again...
    assert if_cancelled("tool", STATE, deps) is None
    assert if_cancelled("verify", STATE, deps) is None
    assert store.calls == ["check", "check"]
    # ...and policy, a safe node, stops the run before its next action.
    with pytest.raises(StepStopped, match="interrupts the run"):
        if_cancelled("policy", STATE, deps)


def _marked(mark: bytes) -> tuple[_Clock, _Store, Any]:
    """A store keeping a stop mark (as SQLite's), and a watch on a clock the test moves."""
    clock, store = _Clock(), _Store(None)
    store.mark = mark
    return clock, store, _deps(store, StopWatch(clock=clock))


def test_with_a_stop_mark_no_node_looks_again_until_the_mark_moves() -> None:
    _, store, deps = _marked(b"first")
    assert if_cancelled("plan", STATE, deps) is None
    for kind in ("policy", "tool", "verify", "plan", "approval", "commit"):
        assert if_cancelled(kind, STATE, deps) is None
    assert store.calls == ["check"]  # the mark stood still: nothing new to read
    store.cancel, store.mark = "asked elsewhere", b"moved"  # another process's cancel
    # The very next node, before its effect:
    assert _stopped_by("tool", deps) == "asked elsewhere"
    assert store.calls == ["check", "check"]


def test_with_a_stop_mark_a_request_written_around_it_is_seen_once_stale() -> None:
    # A cancel whose process died between its commit and the mark, or written by hand.
    clock, store, deps = _marked(b"still")
    assert if_cancelled("tool", STATE, deps) is None
    store.cancel = "by hand"
    clock.now += MARKED_STALE / 2
    assert if_cancelled("tool", STATE, deps) is None
    clock.now += MARKED_STALE / 2
    assert _stopped_by("tool", deps) == "by hand"
    assert store.calls == ["check", "check"]


def test_with_a_stop_mark_a_stop_asked_in_this_process_is_seen_at_the_next_node() -> None:
    _, store, deps = _marked(b"still")
    assert if_cancelled("policy", STATE, deps) is None
    store.cancel = "withdrawn"
    stop_asked()
    assert _stopped_by("tool", deps) == "withdrawn"


def test_the_mark_is_read_before_the_look_so_a_request_during_it_is_looked_for_again() -> None:
    _, store, deps = _marked(b"before")
    looked = store.stop_requests

    def moved_while_reading(thread_id: str) -> tuple[str | None, bool]:
        found = looked(thread_id)
        store.cancel, store.mark = "during the read", b"after"  # committed after the read
        return found

    store.stop_requests = moved_while_reading  # type: ignore[method-assign]
    assert if_cancelled("policy", STATE, deps) is None
    store.stop_requests = looked  # type: ignore[method-assign]
    assert _stopped_by("tool", deps) == "during the read"


def test_an_interrupt_waits_while_the_next_model_call_is_recorded_already() -> None:
    # The run's process died after the model answered, before the plan step's checkpoint:
    # the plan step runs from that answer before the message stops the run.
    store = _Store(None, interrupt=True, answered=1)
    assert if_cancelled("plan", STATE, _deps(store)) is None
    assert store.calls == ["check", "recorded 1"]
    with pytest.raises(StepStopped, match="interrupts the run"):
        if_cancelled("policy", {**STATE, "usage": {"steps": 2}}, _deps(store))


class _Saver:
    def __init__(self, calls: list[str]) -> None:
        self.calls = calls

    def flush(self, thread_id: str | None = None) -> None:
        self.calls.append(f"flush {thread_id}")


@tool(effect="write", idempotent=True)
def _charge(who: str) -> str:
    return who


@tool(effect="read")
def _look(q: str) -> str:
    return q


def _about_to_call(name: str) -> Any:
    action = {"step_id": "0.0", "call_id": "c0", "tool": name, "args": {}}
    return {**STATE, "plan": {"revision": 0, "content": "", "final": None, "actions": [action]}}


@pytest.mark.parametrize(("kind", "flushed"), [("tool", True), ("commit", True),
                                               ("approval", True), ("plan", False),
                                               ("policy", False), ("verify", False)])  # fmt: skip
def test_a_node_acting_on_a_decision_stores_it_before_it_begins(kind: str, flushed: bool) -> None:
    store = _Store(None)
    deps = _deps(store)
    deps.checkpoints = _Saver(store.calls)
    deps.tools = {"_charge": _charge}
    assert if_cancelled(kind, _about_to_call("_charge"), deps) is None
    assert store.calls == (["flush t1", "check"] if flushed else ["check"])


def test_a_read_acts_on_nothing_so_the_decision_before_it_waits_for_its_checkpoint() -> None:
    # A crash before the read's checkpoint has policy decide again and the read made
    # again: the decision need not be stored first, a transaction fewer a read.
    store = _Store(None)
    deps = _deps(store)
    deps.checkpoints = _Saver(store.calls)
    deps.tools = {"_look": _look}
    assert if_cancelled("tool", _about_to_call("_look"), deps) is None
    assert store.calls == ["check"]
    # A tool the runtime does not have (policy refuses it later) is no read it knows of.
    assert if_cancelled("tool", _about_to_call("gone"), deps) is None
    assert store.calls == ["check", "flush t1", "check"]
    # Nor is a state with no action to call (the node says what is wrong, after the flush).
    assert if_cancelled("tool", STATE, deps) is None
    assert store.calls[-2:] == ["flush t1", "check"]


def test_a_tool_goes_to_a_worker_thread_once_before_it_is_called(tmp_path: Path) -> None:
    # Its credentials and the run's usage with the call counted, one trip: under ainvoke
    # each trip is a hand-off from the event loop and back.
    trips_before_call: list[int] = []
    trips = [0]

    @tool(effect="read")
    def look(query: str) -> str:
        trips_before_call.append(trips[0])
        return "seen"

    with AgentRuntime(
        ScriptedChatModel([]), tools=[look], db=tmp_path / "a.db", policy=Policy.allow_all()
    ) as rt:
        principal = {"id": "ops", "roles": [], "tenant": None, "scopes": []}
        row = SimpleNamespace(thread_id="t1", goal="g", principal=principal, budget={})
        state: Any = {
            **initial_state(cast(Any, row)),
            "plan": {
                "revision": 0,
                "content": "",
                "final": None,
                "actions": [
                    {"step_id": "0.0", "call_id": "c0", "tool": "look", "args": {"query": "q"}}
                ],
            },
        }
        spec = rt.deps.tools.get("look")
        assert spec is not None
        steps = run_action(state, rt.deps, spec)
        sent: Any = None
        while True:
            try:
                step = steps.send(sent)
            except StopIteration as done:
                update = done.value
                break
            trips[0] += step.threaded
            sent = step.sync()
    assert trips_before_call == [2]  # that trip, then the call's own
    assert update["outcome"]["content"] == "seen"


def test_a_run_whose_lease_was_lost_stops_before_its_next_node() -> None:
    # The lease keeper found the lease another process's: the node's work never starts
    # (on a store whose checkpoint writes look at the lease too, they would refuse later).
    held = SimpleNamespace(owner="host:1:a", lost=False)
    deps: Any = SimpleNamespace(
        stopping=threading.Event(), stopping_threads=set(), held_leases={"t1": held}
    )
    stop_check(deps, "t1")  # still held: on it goes
    held.lost = True
    with pytest.raises(LeaseLost, match="lost its lease on run 't1'"):
        stop_check(deps, "t1")
    stop_check(deps, "t2")  # another run of the same process goes on
