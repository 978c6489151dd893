"""Toolsets and the tool loop: every async tool call, from any caller, runs on one loop.

A loop-bound session (what an MCP client holds) made at a toolset's start serves every
later call; timeouts cancel the coroutine on that loop; a registry lists toolsets, refreshes
them and refuses a name two tools share. Nothing waits on the wall clock for longer than a
tool timeout of a few hundredths of a second: everything else waits on events.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from langchain_core.tools import StructuredTool

from agentrt import AgentRuntime, Policy, Principal
from agentrt.errors import ConfigError
from agentrt.testing import ScriptedChatModel, ai, tool_call
from agentrt.tools import (
    FunctionToolset,
    LangChainToolset,
    LoopThread,
    LoopTimeout,
    ToolChanges,
    ToolContext,
    ToolRegistry,
    ToolRunner,
    ToolSpec,
    default_loop,
    tool,
    toolset_tool,
)
from agentrt.tools.execution import ToolFailure

CTX = ToolContext(thread_id="t", step_id="1.0", idempotency_key="k", principal=Principal("p"))


@pytest.fixture
def tool_loop() -> Iterator[LoopThread]:
    lt = LoopThread("test-tools")
    yield lt
    lt.close()


def loop_recorder() -> tuple[ToolSpec, list[asyncio.AbstractEventLoop]]:
    seen: list[asyncio.AbstractEventLoop] = []

    @tool
    async def where(n: int) -> int:
        """Say where it ran."""
        seen.append(asyncio.get_running_loop())
        return n

    return where, seen


# one loop ------------------------------------------------------------------------------------


def test_async_tools_run_on_the_tool_loop_whoever_calls(tool_loop: LoopThread) -> None:
    where, seen = loop_recorder()
    runner = ToolRunner(loop=tool_loop)
    callers: list[asyncio.AbstractEventLoop] = []

    async def from_a_loop() -> None:
        callers.append(asyncio.get_running_loop())
        assert (await runner.acall(where, {"n": 2}, CTX)).result == 2
        # a sync call from inside a running loop (Jupyter, a sync node under ainvoke)
        assert runner.call(where, {"n": 3}, CTX).result == 3

    assert runner.call(where, {"n": 1}, CTX).result == 1  # a thread with no loop
    asyncio.run(from_a_loop())
    asyncio.run(from_a_loop())  # a second caller loop
    with ThreadPoolExecutor(2) as pool:  # other threads, at once
        calls = [pool.submit(runner.call, where, {"n": 4}, CTX) for _ in range(2)]
        assert [f.result().result for f in calls] == [4, 4]

    assert len(seen) == 7
    assert set(seen) == {tool_loop.loop}
    assert not set(callers) & set(seen)
    assert callers[0] is not callers[1]


def test_a_runner_without_a_loop_uses_the_process_wide_one() -> None:
    where, seen = loop_recorder()
    ToolRunner().call(where, {"n": 1}, CTX)
    ToolRunner().call(where, {"n": 1}, CTX)
    assert seen == [default_loop().loop] * 2
    assert ToolRunner().tool_loop() is default_loop()


def test_the_callers_context_variables_go_with_the_call(tool_loop: LoopThread) -> None:
    request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id")

    @tool
    async def whose() -> str:
        """Whose call this is."""
        return request_id.get("nobody's")

    request_id.set("alice's")
    assert ToolRunner(loop=tool_loop).call(whose, {}, CTX).result == "alice's"


@pytest.mark.parametrize("caller", ["sync", "async"])
def test_a_timeout_cancels_the_coroutine_on_the_tool_loop(
    tool_loop: LoopThread, caller: str
) -> None:
    cancelled_on: list[asyncio.AbstractEventLoop] = []

    @tool(timeout=0.05)
    async def stuck(n: int) -> int:
        """Wait for an event nobody sets."""
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled_on.append(asyncio.get_running_loop())
            raise
        return n

    runner = ToolRunner(loop=tool_loop)

    def call() -> Any:
        if caller == "sync":
            return runner.call(stuck, {"n": 1}, CTX)
        return asyncio.run(runner.acall(stuck, {"n": 1}, CTX))

    with pytest.raises(ToolFailure) as info:
        call()
    assert (info.value.kind, str(info.value)) == (
        "timeout",
        "TimeoutError: tool 'stuck' did not finish within its timeout of 0.05s",
    )
    # cancelled, and its cleanup ran, before the caller heard of the timeout
    assert cancelled_on == [tool_loop.loop]


def test_a_cancelled_async_caller_cancels_the_tool_on_the_tool_loop(
    tool_loop: LoopThread,
) -> None:
    started, cancelled = threading.Event(), threading.Event()

    @tool
    async def slow() -> str:
        """Wait until cancelled."""
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    async def scenario() -> None:
        task = asyncio.create_task(ToolRunner(loop=tool_loop).acall(slow, {}, CTX))
        assert await asyncio.to_thread(started.wait, 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await asyncio.to_thread(cancelled.wait, 10)

    asyncio.run(scenario())


def test_run_refuses_its_own_thread_and_a_closed_loop() -> None:
    lt = LoopThread("short-lived")

    async def nested() -> str:
        try:
            lt.run(asyncio.sleep(0))
        except RuntimeError as exc:
            return str(exc)
        return "ran"

    assert lt.run(nested()) == (
        "LoopThread 'short-lived': run() was called on the loop's own thread, where it would "
        "wait for itself forever; use `await loop.arun(...)` there"
    )
    lt.close()
    lt.close()  # twice is fine
    with pytest.raises(RuntimeError, match=r"LoopThread 'short-lived' is closed; make a new"):
        lt.run(asyncio.sleep(0))  # and the coroutine is closed, not left 'never awaited'


def test_arun_on_the_tool_loop_itself_runs_in_place(tool_loop: LoopThread) -> None:
    async def inner() -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    async def outer() -> asyncio.AbstractEventLoop:
        return await tool_loop.arun(inner(), timeout=5)

    assert tool_loop.run(outer()) is tool_loop.loop


def test_a_coroutine_that_ignores_its_cancellation_is_let_go_after_the_grace() -> None:
    lt = LoopThread("stubborn", cancel_grace=0.05)
    release = asyncio.Event()  # set on the loop below; made before it is bound to any loop
    ended = threading.Event()

    async def stubborn() -> str:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await release.wait()  # swallows the cancellation until released
        ended.set()
        return "late"

    with pytest.raises(LoopTimeout) as info:
        lt.run(stubborn(), timeout=0.02)
    assert (info.value.left_running, str(info.value)) == (
        True,
        "did not finish within 0.02s and was cancelled; it ignored the cancellation and is "
        "left running on the tool loop",
    )
    lt.loop.call_soon_threadsafe(release.set)
    assert ended.wait(10)
    lt.close()


# a loop-bound session, as an MCP client holds one ----------------------------------------------


class SessionToolset:
    """A remote toolset: a session made on the loop at start, served by a task on it."""

    name = "remote"

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.served = 0
        self.closed = False
        self._requests: asyncio.Queue[tuple[dict[str, Any], asyncio.Future[Any]]] | None = None
        self._lock: asyncio.Lock | None = None
        self._server: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._requests = asyncio.Queue()
        self._lock = asyncio.Lock()
        self._server = asyncio.create_task(self._serve())

    async def _serve(self) -> None:
        assert self._requests is not None
        while True:
            args, reply = await self._requests.get()
            self.served += 1
            reply.set_result({"echo": args["text"], "n": self.served})

    async def list_tools(self) -> list[ToolSpec]:
        assert self._requests is not None, "listed before start"
        schema = {"type": "object", "properties": {"text": {"type": "string"}}}
        return [toolset_tool(self, name="echo", description="Echo it.", schema=schema)]

    async def call(self, spec: ToolSpec, args: dict[str, Any], ctx: ToolContext) -> Any:
        assert self._requests is not None
        assert self._lock is not None
        # Both belong to the loop start() ran on: any other loop raises RuntimeError here.
        async with self._lock:
            reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            await self._requests.put((args, reply))
            return await reply

    async def close(self) -> None:
        assert self._server is not None
        self._server.cancel()
        self.closed = True


def test_a_loop_bound_session_serves_many_calls_from_every_caller(tool_loop: LoopThread) -> None:
    session = SessionToolset()
    registry = ToolRegistry([session], loop=tool_loop)
    assert registry.names() == []  # a remote toolset is listed when started
    assert registry.start() == ToolChanges(added=("echo",))
    assert (registry.names(), registry.origin("echo")) == (["echo"], "remote")
    echo = registry.get("echo")
    assert echo is not None
    runner = ToolRunner(loop=registry.loop)

    results = [runner.call(echo, {"text": f"s{i}"}, CTX).result for i in range(20)]
    with ThreadPoolExecutor(4) as pool:
        results += [
            f.result().result
            for f in [pool.submit(runner.call, echo, {"text": f"t{i}"}, CTX) for i in range(20)]
        ]

    async def from_a_loop() -> list[Any]:
        calls = [runner.acall(echo, {"text": f"a{i}"}, CTX) for i in range(20)]
        return [c.result for c in await asyncio.gather(*calls)]

    results += asyncio.run(from_a_loop())
    assert session.loop is tool_loop.loop
    assert sorted(r["n"] for r in results) == list(range(1, 61))
    assert {r["echo"] for r in results} == {f"{p}{i}" for p in "sta" for i in range(20)}
    registry.close()
    assert session.closed


def test_a_toolset_that_fails_to_start_is_named(tool_loop: LoopThread) -> None:
    class Broken(SessionToolset):
        name = "broken"

        async def start(self) -> None:
            raise ConnectionRefusedError("server not running")

    registry = ToolRegistry([Broken()], loop=tool_loop)
    with pytest.raises(ConnectionRefusedError) as info:
        registry.start()
    assert info.value.__notes__ == ["(while starting toolset 'broken')"]


# the registry --------------------------------------------------------------------------------


@tool
def lookup(order_id: str) -> str:
    """Look an order up."""
    return order_id


@tool(name="lookup")
def lookup_twin(order_id: str) -> str:
    """Another tool of the same name."""
    return order_id


@tool
def ship(order_id: str) -> str:
    """Ship an order."""
    return order_id


@tool
def cancel(order_id: str) -> str:
    """Cancel an order."""
    return order_id


def test_a_refresh_picks_up_a_toolsets_changes_and_refuses_a_clash(
    tool_loop: LoopThread,
) -> None:
    functions = FunctionToolset([ship])
    registry = ToolRegistry([lookup, functions], loop=tool_loop)
    assert (registry.names(), registry.origin("lookup"), registry.origin("ship")) == (
        ["lookup", "ship"],
        None,
        "functions",
    )

    functions.add(cancel)
    assert registry.get("cancel") is None  # until refreshed
    assert registry.refresh("functions") == ToolChanges(added=("cancel",), replaced=())
    assert registry.names() == ["lookup", "ship", "cancel"]

    functions.remove("ship")
    assert asyncio.run(registry.arefresh()) == ToolChanges(removed=("ship",))
    assert registry.names() == ["lookup", "cancel"]

    functions.add(lookup_twin)
    with pytest.raises(ConfigError) as info:
        registry.refresh("functions")
    assert str(info.value) == (
        "two tools are named 'lookup': one from the tools list, one from toolset "
        "'functions'; tool names must be unique: rename one, or leave one of them out"
    )
    assert registry.names() == ["lookup", "cancel"]  # as it was
    assert registry.get("lookup") is lookup

    with pytest.raises(ConfigError, match=r"^no toolset named 'mcp'; this registry has \['fun"):
        registry.refresh("mcp")


def test_clashes_between_toolsets_and_within_one_are_config_errors() -> None:
    with pytest.raises(ConfigError) as info:
        ToolRegistry([FunctionToolset([lookup], name="a"), FunctionToolset([lookup_twin])])
    assert str(info.value).startswith(
        "two tools are named 'lookup': one from toolset 'a', one from toolset 'functions';"
    )
    with pytest.raises(ConfigError, match=r"^two toolsets are named 'functions'; give one"):
        ToolRegistry([FunctionToolset([lookup]), FunctionToolset([ship])])
    with pytest.raises(ConfigError, match=r"^toolset 'functions' has two tools named 'lookup'"):
        FunctionToolset([lookup, lookup_twin])


def test_a_toolset_that_lists_something_else_is_a_config_error(tool_loop: LoopThread) -> None:
    class Sloppy(SessionToolset):
        name = "sloppy"

        async def list_tools(self) -> list[Any]:
            return [{"name": "echo"}]

    with pytest.raises(ConfigError, match=r"^toolset 'sloppy' listed \{'name': 'echo'\}, which"):
        ToolRegistry([Sloppy()], loop=tool_loop).start()


def test_langchain_toolset_wraps_its_tools_with_its_options() -> None:
    async def shout(text: str) -> str:
        return text.upper()

    loud = StructuredTool.from_function(coroutine=shout, name="shout", description="Shout it.")
    toolset = LangChainToolset([loud], effect="read", scopes=["talk"])
    registry = ToolRegistry([toolset])  # local: listed at once, no start needed
    spec = registry.get("shout")
    assert spec is not None
    assert (spec.effect, spec.scopes, registry.origin("shout")) == ("read", ("talk",), "langchain")
    assert ToolRunner().call(spec, {"text": "hi"}, CTX).result == "HI"
    assert asyncio.run(toolset.call(spec, {"text": "yo"}, CTX)) == "YO"


def test_function_toolset_call_runs_sync_tools_off_the_loop() -> None:
    threads: list[int] = []

    @tool
    def where() -> str:
        """Where it ran."""
        threads.append(threading.get_ident())
        return "ok"

    async def scenario() -> None:
        assert await FunctionToolset([where]).call(where, {}, CTX) == "ok"

    asyncio.run(scenario())
    assert threads != [threading.get_ident()]


# inside runs ---------------------------------------------------------------------------------


def test_sync_and_async_runs_call_async_tools_on_one_loop_not_the_callers(
    db: Path,
) -> None:
    where, seen = loop_recorder()
    script = [ai("", tool_call("where", {"n": 7})), "done"]
    callers: list[asyncio.AbstractEventLoop] = []
    with AgentRuntime(
        ScriptedChatModel(script), tools=[where], policy=Policy.allow_all(), db=db
    ) as rt:
        assert rt.start("go", principal=Principal("p")).status == "succeeded"

        async def async_run() -> str:
            callers.append(asyncio.get_running_loop())
            return (await rt.astart("go", principal=Principal("p"))).status

        assert asyncio.run(async_run()) == "succeeded"
        assert asyncio.run(async_run()) == "succeeded"
    assert len(seen) == 3
    assert len(set(seen)) == 1
    assert not set(seen) & set(callers)
