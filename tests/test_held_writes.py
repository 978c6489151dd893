"""What a node writes to the checkpoint waits for the checkpoint after it, and after a pure
node that checkpoint waits for the run's next write, each going in its transaction
(agentrt.store.held), on both savers: a second saver on the same database, which holds
nothing, reads what is stored."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import CheckpointMetadata, empty_checkpoint

from agentrt import AgentRuntime, Policy, Principal, ToolContext, tool
from agentrt.nodes import PURE_NODES
from agentrt.runs import taking
from agentrt.runs.held_writes import aholding
from agentrt.store import OpenedStore, open_store
from agentrt.store.held import Holding
from agentrt.testing import ScriptedChatModel, ai, tool_call
from tests.crashy_app import build_runtime, killed_at, sink_path

OPS = Principal("olga", roles=["operator"], tenant="acme")

START: RunnableConfig = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
STEP: CheckpointMetadata = {"source": "loop", "step": 0, "parents": {}}
INPUT: CheckpointMetadata = {"source": "input", "step": -1, "parents": {}}


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest) -> str:
    if request.param == "sqlite":
        return str(request.getfixturevalue("tmp_path") / "agentrt.db")
    return str(request.getfixturevalue("postgres_url"))


def _opened(url: str) -> Iterator[OpenedStore]:
    opened = open_store(url)
    try:
        yield opened
    finally:
        opened.checkpointer.close()  # type: ignore[attr-defined]
        opened.store.close()


@pytest.fixture
def saver(url: str) -> Iterator[Any]:
    yield from (o.checkpointer for o in _opened(url))


@pytest.fixture
def reader(url: str) -> Iterator[Any]:
    """Another saver on the database: it sees only what was stored."""
    yield from (o.checkpointer for o in _opened(url))


def _put(saver: Any, parent: RunnableConfig) -> RunnableConfig:
    config: RunnableConfig = saver.put(parent, empty_checkpoint(), STEP, {})
    return config


def _writes(saver: Any, node: str, at: RunnableConfig, route: str) -> None:
    saver.put_writes(at, [("route", route)], f"task-{route}", f"~__pregel_pull, {node}")


def _stored(reader: Any) -> list[tuple[str, list[Any]]]:
    """The thread's checkpoints, oldest first, each with the values its tasks wrote."""
    found = [
        (t.config["configurable"]["checkpoint_id"], t.pending_writes) for t in reader.list(START)
    ]
    return [(cid, sorted(w[2] for w in writes or [])) for cid, writes in reversed(found)]


def _id(config: RunnableConfig) -> str:
    return str(config["configurable"]["checkpoint_id"])


def test_a_pure_nodes_writes_wait_for_the_next_write_and_go_with_it(
    saver: Any, reader: Any
) -> None:
    first = _put(saver, START)
    saver.hold("t", PURE_NODES)
    _writes(saver, "policy", first, "tool")
    after_policy = _put(saver, first)
    assert _stored(reader) == [(_id(first), [])]  # both held
    _writes(saver, "tool", after_policy, "verify")  # not pure: carries them
    assert _stored(reader) == [(_id(first), ["tool"]), (_id(after_policy), ["verify"])]
    after_tool = _put(saver, after_policy)  # after a node that is not pure: at once
    assert [cid for cid, _ in _stored(reader)][-1] == _id(after_tool)


def _transactions(saver: Any) -> list[int]:
    """How many calls each of the saver's writes from now on carries, in order."""
    made: list[int] = []
    one, all_ = saver._write_one, saver._write_all

    def write_one(call: Any, fence: Any = None) -> None:
        made.append(1)
        one(call, fence)

    def write_all(calls: Any, fence: Any = None) -> None:
        made.append(len(calls))
        all_(calls, fence)

    saver._write_one, saver._write_all = write_one, write_all
    return made


def test_a_nodes_writes_wait_for_the_checkpoint_after_them_and_go_in_its_transaction(
    saver: Any, reader: Any
) -> None:
    first = _put(saver, START)
    saver.hold("t", PURE_NODES, {"plan", "tool"})
    made = _transactions(saver)
    _writes(saver, "plan", first, "policy")
    assert _stored(reader) == [(_id(first), [])]  # the model's answer is recorded already
    after_plan = _put(saver, first)
    assert _stored(reader) == [(_id(first), ["policy"]), (_id(after_plan), [])]
    assert made == [2]  # one transaction
    _writes(saver, "tool", after_plan, "verify")
    after_tool = _put(saver, after_plan)  # not held past it, as after a pure node
    assert [cid for cid, _ in _stored(reader)][-1] == _id(after_tool)
    assert made == [2, 2]


def test_a_pure_nodes_checkpoint_and_the_next_nodes_writes_go_with_the_checkpoint_after(
    saver: Any, reader: Any
) -> None:
    first = _put(saver, START)
    saver.hold("t", PURE_NODES, {"plan"})
    made = _transactions(saver)
    _writes(saver, "verify", first, "plan")
    after_verify = _put(saver, first)
    _writes(saver, "plan", after_verify, "policy")
    assert _stored(reader) == [(_id(first), [])]
    after_plan = _put(saver, after_verify)
    assert _stored(reader) == [
        (_id(first), ["plan"]),
        (_id(after_verify), ["policy"]),
        (_id(after_plan), []),
    ]
    assert made == [4]


def test_a_runs_input_its_writes_and_the_first_checkpoint_go_in_one_transaction(
    saver: Any, reader: Any
) -> None:
    saver.hold("t", PURE_NODES, {"__start__"})
    made = _transactions(saver)
    given: RunnableConfig = saver.put(START, empty_checkpoint(), INPUT, {})
    _writes(saver, "__start__", given, "plan")
    assert _stored(reader) == []  # nothing ran from the input yet
    first = _put(saver, given)
    assert _stored(reader) == [(_id(given), ["plan"]), (_id(first), [])]
    assert made == [3]


def test_writes_no_checkpoint_follows_are_stored_when_the_segment_ends(
    saver: Any, reader: Any
) -> None:
    # A node that stops the run (an interrupt, an error): LangGraph stores its writes and
    # no checkpoint after them.
    first = _put(saver, START)
    saver.hold("t", PURE_NODES, {"approval"})
    _writes(saver, "approval", first, "asked")
    assert _stored(reader) == [(_id(first), [])]
    saver.release("t")
    assert _stored(reader) == [(_id(first), ["asked"])]


def test_a_read_through_the_saver_stores_what_it_holds_first(saver: Any, reader: Any) -> None:
    first = _put(saver, START)
    saver.hold("t", PURE_NODES)
    _writes(saver, "verify", first, "plan")
    after_verify = _put(saver, first)
    latest = saver.get_tuple(START)  # this process never sees its own run go back
    assert latest is not None
    assert _id(latest.config) == _id(after_verify)
    assert _stored(reader) == [(_id(first), ["plan"]), (_id(after_verify), [])]


def test_release_stores_what_is_still_held_and_holds_no_more(saver: Any, reader: Any) -> None:
    first = _put(saver, START)
    saver.hold("t", PURE_NODES)
    _writes(saver, "policy", first, "tool")
    after_policy = _put(saver, first)
    saver.release("t")  # the segment ended (a stop before the next node)
    assert _stored(reader) == [(_id(first), ["tool"]), (_id(after_policy), [])]
    _writes(saver, "policy", after_policy, "approval")  # not held any more: stored at once
    assert _stored(reader)[-1] == (_id(after_policy), ["approval"])


def test_a_thread_not_held_is_written_as_langgraph_writes_it(saver: Any, reader: Any) -> None:
    # An app's own graph may have a node called verify: nothing of its is held.
    first = _put(saver, START)
    _writes(saver, "verify", first, "plan")
    second = _put(saver, first)
    assert _stored(reader) == [(_id(first), ["plan"]), (_id(second), [])]


class _CancelledAsItReleases:
    """A saver whose release, in its worker thread, has the awaiting task cancelled again
    (as anyio's cancel scopes do, at every await) and ends only once the task has had it."""

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.task: asyncio.Future[Any] | None = None
        self.seen = threading.Event()

    def hold(self, *args: Any) -> None:
        pass

    def flush(self, thread_id: str | None = None) -> None:
        pass

    def hold_usage(self, thread_id: str, usage: Any) -> bool:
        return False

    def release(self, thread_id: str) -> None:
        assert self.task is not None
        loop = self.task.get_loop()
        loop.call_soon_threadsafe(self.task.cancel)
        loop.call_soon_threadsafe(loop.call_soon, self.seen.set)  # once the task had it
        assert self.seen.wait(timeout=30)
        self.log.append("released")


def test_what_is_held_is_stored_before_a_cancelled_segment_goes_on(tmp_path: Path) -> None:
    # The graph run is cancelled, and its caller cancelled again as what the thread still
    # holds is written: the segment goes on (to let its lease go) only once it is written.
    log: list[str] = []
    saver = _CancelledAsItReleases(log)
    graph = SimpleNamespace(checkpointer=saver)

    async def segment() -> None:
        try:
            async with aholding(graph, "t"):
                await asyncio.Event().wait()  # the graph runs until its caller is cancelled
        except asyncio.CancelledError:
            log.append("segment goes on")
            raise

    async def scenario() -> None:
        saver.task = asyncio.ensure_future(segment())
        await asyncio.sleep(0)  # the graph is running
        saver.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await saver.task

    asyncio.run(scenario())
    assert log == ["released", "segment goes on"]


def test_a_failed_write_holds_what_it_carried_again() -> None:
    holding = Holding()
    holding.hold("t", {"policy"})
    assert holding.writes("t", "c0", "~__pregel_pull, policy", lambda: "w0")
    assert holding.checkpoint("t", "c0", lambda: "c1")

    def failing_write() -> None:
        with holding.writing("t") as taken:
            assert [call() for call in taken] == ["w0", "c1"]
            raise RuntimeError("the database went away")

    with pytest.raises(RuntimeError, match="went away"):
        failing_write()
    with holding.writing("t") as again:
        assert [call() for call in again] == ["w0", "c1"]
    with holding.writing("t") as nothing:
        assert nothing == []
    assert not holding.checkpoint("t", "c0", lambda: "c1")  # only right after a pure node


def test_a_checkpoint_waits_only_when_every_task_before_it_was_pure() -> None:
    holding = Holding()
    holding.hold("t", {"policy"}, {"tool"})
    assert holding.writes("t", "c0", "~__pregel_pull, policy", lambda: "w0")
    assert holding.writes("t", "c0", "~__pregel_pull, tool", lambda: "w1")  # same step
    assert not holding.checkpoint("t", "c0", lambda: "c1")  # written now, with both
    assert holding.writes("t", "c1", "~__pregel_pull, policy", lambda: "w2")
    assert holding.checkpoint("t", "c1", lambda: "c2")
    assert not holding.writes("t", "c2", "~__pregel_pull, finish", lambda: "w3")  # not named
    assert not holding.writes("t", "c2", "", lambda: "resume")  # before any node: at once


@pytest.mark.subprocess
def test_the_decision_an_effect_acts_on_is_stored_before_the_effect_begins(tmp_path: Path) -> None:
    db = tmp_path / "agentrt.db"
    killed_at(db, "tool")  # inside the first charge

    with build_runtime(db) as rt:
        cfg: RunnableConfig = {"configurable": {"thread_id": "t-crash"}}
        # policy's allow was stored as the charge began: the run goes on from the charge.
        assert rt.graph.get_state(cfg).next == ("tool",)
        # A policy deployed meanwhile denies charges: the charge under way is not denied
        # after the fact (the ledger carries it on), only the ones not begun.
        rt.set_policy(Policy(default="deny", name="no-charges"))
        run = rt.resume("t-crash")
        assert run.status.value == "succeeded"
        log = [
            (e["type"], e.get("step_id"), e["data"].get("outcome") or e["data"].get("kind"))
            for e in rt.events("t-crash")
            if e["type"] in ("policy", "observation")
        ]
    assert log == [
        ("policy", "0.0", "allow"),
        ("observation", "0.0", "ok"),
        ("policy", "1.0", "deny"),
        ("observation", "1.0", "denied"),
        ("observation", "1.1", "skipped"),
    ]
    with sqlite3.connect(sink_path(db)) as conn:
        charged = conn.execute("SELECT who FROM charges").fetchall()
    assert charged == [("al",)]  # once: the call made again carried the same key


@pytest.mark.subprocess
def test_a_crash_while_policy_decides_loses_the_decision_only(tmp_path: Path) -> None:
    db = tmp_path / "agentrt.db"
    killed_at(db, "deciding")  # policy on bo, turn 2's first

    with build_runtime(db) as rt:
        cfg: RunnableConfig = {"configurable": {"thread_id": "t-crash"}}
        # Stored: turn 1's tool step, verify's observation in it. Policy runs in turn 2's
        # plan step (agentrt.graphs.onward), which died with it: plan takes its recorded
        # answer again (the model is not asked twice) and the decision is made again.
        assert rt.graph.get_state(cfg).next == ("plan",)
        run = rt.resume("t-crash")
        assert run.status.value == "succeeded"
        plans = [e["data"]["revision"] for e in rt.events("t-crash") if e["type"] == "plan"]
    with sqlite3.connect(sink_path(db)) as conn:
        asks = conn.execute("SELECT count(*) FROM asks").fetchone()[0]
        charged = conn.execute("SELECT who FROM charges ORDER BY who").fetchall()
    assert asks == 1  # turn 2 was answered once
    assert plans == sorted(set(plans))  # each plan step once in the log
    assert charged == [("al",), ("bo",), ("cy",)]


def test_a_message_interrupting_from_another_process_stops_the_rest_of_the_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The sender is in another process: this one is not told a stop was asked.
    monkeypatch.setattr(taking, "stop_asked", lambda: None)
    paid: list[str] = []
    runtime: list[AgentRuntime] = []

    @tool(effect="write", idempotent=True)
    def pay(who: str, ctx: ToolContext) -> dict[str, str]:
        """Pay someone.

        Args:
            who: Payee.
        """
        paid.append(who)
        if who == "al":
            runtime[0].send(
                ctx.thread_id,
                "stop paying",
                principal=OPS,
                double_texting="interrupt",
                resume=False,
            )
        return {"paid": who}

    model = ScriptedChatModel(
        [ai("", *(tool_call("pay", {"who": w}) for w in ("al", "bo", "cy"))), "done", "ok"]
    )
    with AgentRuntime(model, tools=[pay], policy=Policy.allow_all(), db=tmp_path / "a.db") as rt:
        runtime.append(rt)
        rt.start("pay al, bo and cy", principal=OPS)
    assert paid == ["al"]


def test_an_async_run_holds_its_writes_as_a_sync_run_does(url: str) -> None:
    # LangGraph hands the saver a task's path only if its signature names it: without the
    # path no write would be known as a node's, and none held.
    @tool(effect="read")
    def look(q: str) -> str:
        """Look something up.

        Args:
            q: What to look up.
        """
        return q

    turns = [ai("", tool_call("look", {"q": "x"})), "done"]
    model = ScriptedChatModel(turns * 2)
    with AgentRuntime(model, tools=[look], policy=Policy.allow_all(), db=url) as rt:
        made = _transactions(rt.graph.checkpointer)
        assert rt.start("look x", principal=OPS).status.value == "succeeded"
        sync = list(made)
        made.clear()
        run = asyncio.run(rt.astart("look x", principal=OPS))
        assert run.status.value == "succeeded"
    assert sum(made) == sum(sync)  # the same saver calls
    assert len(sync) < sum(sync) / 2  # most calls carried with others
    # ...and so in the async run. LangGraph orders a node's writes before the checkpoint
    # after them only when they append to the event log: writes that come late go with
    # the thread's next write, or at the release, one transaction more at most.
    assert len(made) <= len(sync) + 1


def test_an_async_call_the_thread_holds_back_makes_no_trip_to_the_worker(url: str) -> None:
    # Held, a call is only noted in memory: sent to the saver's worker thread it would cost
    # the event loop a hand-off each, most of an async run's saver calls.
    wrote = threading.local()
    trips: list[tuple[str, int]] = []
    with AgentRuntime(ScriptedChatModel(["done"]), policy=Policy.allow_all(), db=url) as rt:
        saver = rt.graph.checkpointer
        one, all_, worker = saver._write_one, saver._write_all, saver._worker

        def counted(write: Any) -> Any:
            def call(*args: Any) -> None:
                wrote.n = getattr(wrote, "n", 0) + 1
                write(*args)

            return call

        class Worker:
            def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
                def trip() -> Any:
                    wrote.n = 0
                    try:
                        return fn(*args, **kwargs)
                    finally:
                        trips.append((getattr(fn, "func", fn).__name__, wrote.n))

                return worker.submit(trip)

            def shutdown(self, wait: bool = True) -> None:
                worker.shutdown(wait=wait)

        saver._write_one, saver._write_all = counted(one), counted(all_)
        saver._worker = Worker()
        run = asyncio.run(rt.astart("hello", principal=OPS))
        assert run.status.value == "succeeded"
        assert run.output == "done"
    assert trips[0] == ("get_tuple", 0)  # where the thread stands, before its input
    assert trips[1:]
    assert all(trip == ("_write", 1) for trip in trips[1:])  # each one writes


def test_an_async_run_serialises_its_checkpoints_off_the_event_loop(url: str) -> None:
    # Whether a call is held is decided on the loop; making it what the database stores
    # (the state serialised: milliseconds for a long conversation) is not, held or not.
    loop_thread = threading.current_thread()
    serialised_on: list[threading.Thread] = []
    with AgentRuntime(ScriptedChatModel(["done"]), policy=Policy.allow_all(), db=url) as rt:
        serde = rt.graph.checkpointer.serde
        dumps = serde.dumps_typed

        def recorded(obj: Any) -> Any:
            serialised_on.append(threading.current_thread())
            return dumps(obj)

        serde.dumps_typed = recorded
        try:
            run = asyncio.run(rt.astart("hello", principal=OPS))
        finally:
            del serde.dumps_typed
        assert run.status.value == "succeeded"
    assert serialised_on  # the run's checkpoints were serialised...
    assert loop_thread not in serialised_on  # ...and never on the loop's thread


def test_a_thread_held_under_a_lease_is_written_only_while_the_lease_is_its_owners(
    url: str,
) -> None:
    # A driver paused past its lease, which another process then took, must not write a
    # checkpoint over the run the other drives: each write looks at the lease with it.
    from agentrt.errors import LeaseLost
    from agentrt.runs.lease import LeaseOwner, acquire

    mine, theirs = LeaseOwner("a", host="here", pid=1), LeaseOwner("b", host="here", pid=2)
    with AgentRuntime(ScriptedChatModel([]), db=url) as rt:
        thread_id = rt.create("g", principal=OPS).thread_id
        saver, store = rt.graph.checkpointer, rt.store
        at: RunnableConfig = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
        acquire(store, thread_id, mine, 30.0, now=store.clock())
        saver.hold(thread_id, PURE_NODES, {"plan"}, mine.label)
        first = saver.put(at, empty_checkpoint(), STEP, {})  # the lease is mine: written
        saver.put_writes(first, [("route", "x")], "task-1", "~__pregel_pull, plan")  # held
        store.release_lease(thread_id, mine.label)
        acquire(store, thread_id, theirs, 30.0, now=store.clock())  # taken over
        with pytest.raises(LeaseLost, match=f"lost its lease on run {thread_id!r}"):
            saver.put(first, empty_checkpoint(), STEP, {})  # carries the held writes
        # A read in that process sees what is stored: what the thread holds is dropped.
        found = saver.get_tuple(at)
        assert found is not None
        assert (
            found.config["configurable"]["checkpoint_id"] == first["configurable"]["checkpoint_id"]
        )
        saver.put_writes(first, [("route", "y")], "task-2", "~__pregel_pull, plan")  # held
        with pytest.raises(LeaseLost):  # what it still holds as it lets go: not written
            saver.release(thread_id)
        stored = [
            (t.config["configurable"]["checkpoint_id"], t.pending_writes) for t in saver.list(at)
        ]
        assert stored == [(first["configurable"]["checkpoint_id"], [])]


def test_a_reads_count_reaches_the_runs_row_in_the_transaction_of_the_tools_checkpoint(
    url: str,
) -> None:
    # An effect's count is on the row before it runs; a read's goes with the checkpoint
    # after it, in its transaction: no transaction of its own, and the row keeps up with
    # every checkpoint (tests/test_budget_processes.py kills a run to see that).
    seen: list[tuple[str, int]] = []

    def counted(name: str, ctx: ToolContext) -> None:
        seen.append((name, rt.get(ctx.thread_id).usage["tool_calls"]))

    @tool(effect="read")
    def look(q: str, ctx: ToolContext) -> str:
        counted("look", ctx)
        return "seen"

    @tool(effect="write", idempotent=True)
    def note(text: str, ctx: ToolContext) -> str:
        counted("note", ctx)
        return "noted"

    turns = [
        ai("", tool_call("look", {"q": "a"})),
        ai("", tool_call("note", {"text": "b"}), tool_call("look", {"q": "c"})),
        "done",
    ]
    with AgentRuntime(
        ScriptedChatModel(turns), tools=[look, note], db=url, policy=Policy.allow_all()
    ) as rt:
        saver = rt.graph.checkpointer
        usage_calls: list[Any] = []
        carried: list[int] = []  # for each write with a usage call: how many calls it made
        usage_call, write_one, write_all = saver._usage_call, saver._write_one, saver._write_all

        def noted_usage(thread_id: str, usage: Any) -> Any:
            usage_calls.append(usage_call(thread_id, usage))
            return usage_calls[-1]

        def one(call: Any, fence: Any = None) -> None:
            carried.extend(1 for c in usage_calls if c is call)
            write_one(call, fence)

        def all_(calls: Any, fence: Any = None) -> None:
            carried.extend(len(calls) for c in usage_calls if any(c is d for d in calls))
            write_all(calls, fence)

        saver._usage_call, saver._write_one, saver._write_all = noted_usage, one, all_
        run = rt.start("look, note, look", principal=OPS)
        assert run.status.value == "succeeded"
        assert rt.get(run.thread_id).usage == run.usage
    # The first read sees none counted; the write sees itself counted (and the read before
    # it, carried by the read's checkpoint); the last read sees the write but not itself.
    assert seen == [("look", 0), ("note", 2), ("look", 2)]
    assert len(usage_calls) == 2
    # Each read's count went in a write with others: its tool's writes and checkpoint.
    assert len(carried) == 2
    assert min(carried) >= 3
