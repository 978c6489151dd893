"""The error contract at the tool boundary: kinds, retries with backoff, timeouts, schemas.

Sleep and jitter are injected (a recorder and a fixed source) and timeouts are driven by
tools that block on an Event nobody sets, so nothing here waits on the wall clock for
longer than a timeout of a few hundredths of a second.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from langgraph.types import RetryPolicy
from pydantic import BaseModel

from agentrt.errors import ConfigError
from agentrt.principal import Principal
from agentrt.tools import ToolContext, ToolError, ToolSpec, tool
from agentrt.tools.execution import ToolFailure, ToolRunner, backoff, classify
from tests.conftest import FakeClock

CTX = ToolContext(thread_id="t", step_id="1.0", idempotency_key="k", principal=Principal("p"))


class Sleeps:
    """Records each requested sleep and moves the fake clock instead of waiting."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.clock.advance(seconds)


@pytest.fixture
def sleeps(clock: FakeClock) -> Sleeps:
    return Sleeps(clock)


@pytest.fixture
def runner(clock: FakeClock, sleeps: Sleeps) -> ToolRunner:
    return ToolRunner(sleep=sleeps, rand=lambda: 0.25, clock=clock)


def flaky(fails: int, exc: Exception, **options: Any) -> tuple[ToolSpec, list[int]]:
    calls: list[int] = []

    @tool(**options)
    def fetch(n: int) -> dict[str, int]:
        """Fetch n; fails the first few times."""
        calls.append(n)
        if len(calls) <= fails:
            raise exc
        return {"n": n}

    return fetch, calls


def test_transient_errors_are_retried_with_backoff_and_jitter(
    runner: ToolRunner, sleeps: Sleeps
) -> None:
    spec, calls = flaky(
        3,
        ToolError("busy", kind="transient"),
        retry=RetryPolicy(max_attempts=5, initial_interval=1.0, backoff_factor=3.0),
    )
    called = runner.call(spec, {"n": 7}, CTX)
    assert (called.result, called.retries, len(calls)) == ({"n": 7}, 3, 4)
    # 1, 3, 9 seconds, each plus the injected jitter of 0.25.
    assert sleeps.waits == [1.25, 3.25, 9.25]


def test_backoff_is_langgraphs_formula_capped_at_max_interval() -> None:
    policy = RetryPolicy(initial_interval=2.0, backoff_factor=10.0, max_interval=50.0, jitter=False)
    assert [backoff(policy, n, lambda: 0.9) for n in (1, 2, 3)] == [2.0, 20.0, 50.0]
    assert backoff(policy._replace(jitter=True), 1, lambda: 0.9) == pytest.approx(2.9)


def test_retries_run_out_into_a_transient_failure_that_counts_them(
    runner: ToolRunner, sleeps: Sleeps
) -> None:
    spec, calls = flaky(10, ToolError("busy", kind="transient"), retry=RetryPolicy(max_attempts=3))
    with pytest.raises(ToolFailure) as info:
        runner.call(spec, {"n": 1}, CTX)
    assert (info.value.kind, info.value.retries, str(info.value)) == ("transient", 2, "busy")
    assert len(calls) == 3
    assert len(sleeps.waits) == 2


def test_permanent_errors_are_not_retried(runner: ToolRunner, sleeps: Sleeps) -> None:
    spec, calls = flaky(1, ToolError("no such order"))
    with pytest.raises(ToolFailure) as info:
        runner.call(spec, {"n": 1}, CTX)
    assert (info.value.kind, info.value.retries, len(calls), sleeps.waits) == (
        "permanent",
        0,
        1,
        [],
    )


def test_retry_on_decides_for_other_exceptions_of_reads_and_idempotent_tools() -> None:
    read, _ = flaky(0, ValueError(), retry=RetryPolicy(retry_on=ConnectionError))
    idem, _ = flaky(0, ValueError(), effect="write", idempotent=True)
    blind, _ = flaky(0, ValueError(), effect="write", retry=RetryPolicy(retry_on=Exception))
    assert classify(read, ConnectionError("reset")) == "transient"
    assert classify(read, KeyError("x")) == "permanent"
    # LangGraph's default retry_on: connection errors yes, programming errors no.
    assert classify(idem, ConnectionError("reset")) == "transient"
    assert classify(idem, ValueError("bad")) == "permanent"
    # A non-idempotent tool that failed some unknown way may have half-acted: not retried,
    # whatever retry_on says; only its own ToolError(kind="transient") is.
    assert classify(blind, ConnectionError("reset")) == "permanent"
    assert classify(blind, ToolError("busy", kind="transient")) == "transient"


def test_no_retry_sleeps_past_the_runs_deadline(clock: FakeClock, sleeps: Sleeps) -> None:
    runner = ToolRunner(sleep=sleeps, rand=lambda: 0.0, clock=clock)
    spec, calls = flaky(
        10,
        ToolError("busy", kind="transient"),
        retry=RetryPolicy(max_attempts=10, initial_interval=4.0, jitter=False),
    )
    ctx = ToolContext(
        thread_id="t",
        step_id="1.0",
        idempotency_key="k",
        principal=Principal("p"),
        deadline=clock.now + 10.0,
    )
    with pytest.raises(ToolFailure) as info:
        runner.call(spec, {"n": 1}, ctx)
    assert sleeps.waits == [4.0]  # the next wait (8 s) would end after the deadline
    assert info.value.retries == 1
    assert "no retry: the run's deadline comes first" in str(info.value)
    assert len(calls) == 2


def test_a_sync_tool_past_its_timeout_is_a_timeout_failure(runner: ToolRunner) -> None:
    release = threading.Event()

    @tool(timeout=0.05)
    def stuck(n: int) -> int:
        release.wait()
        return n

    try:
        with pytest.raises(ToolFailure) as info:
            runner.call(stuck, {"n": 1}, CTX)
    finally:
        release.set()
    assert info.value.kind == "timeout"
    assert (
        str(info.value) == "TimeoutError: tool 'stuck' did not finish within its timeout of 0.05s"
    )


def test_an_async_tool_is_cancelled_at_its_timeout(runner: ToolRunner) -> None:
    cancelled = threading.Event()

    @tool(timeout=0.05)
    async def stuck(n: int) -> int:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return n

    with pytest.raises(ToolFailure) as info:
        runner.call(stuck, {"n": 1}, CTX)
    assert info.value.kind == "timeout"
    assert cancelled.is_set()  # cancelled, not left running


def test_an_async_tool_runs_and_its_result_is_checked(runner: ToolRunner) -> None:
    @tool
    async def double(n: int) -> int:
        return 2 * n

    assert runner.call(double, {"n": 4}, CTX).result == 8
    assert double.check_output(8) is None
    assert double.check_output("eight") == (
        "the result of 'double' does not match its schema: (value): Input should be a valid "
        "integer, unable to parse string as an integer"
    )


def test_a_timed_out_idempotent_call_is_retried_with_the_same_key(
    runner: ToolRunner, sleeps: Sleeps
) -> None:
    release = threading.Event()
    keys: list[str] = []

    @tool(effect="write", idempotent=True, timeout=0.05, retry=RetryPolicy(max_attempts=2))
    def push(n: int, ctx: ToolContext) -> int:
        keys.append(ctx.idempotency_key)
        if len(keys) == 1:
            release.wait()
        return n

    try:
        assert runner.call(push, {"n": 3}, CTX).retries == 1
    finally:
        release.set()
    assert keys == ["k", "k"]
    assert len(sleeps.waits) == 1


def test_a_timed_out_non_idempotent_call_is_never_retried_here(runner: ToolRunner) -> None:
    release = threading.Event()
    calls: list[int] = []

    @tool(effect="write", timeout=0.05, retry=RetryPolicy(max_attempts=5))
    def send(n: int) -> int:
        calls.append(n)
        release.wait()
        return n

    try:
        with pytest.raises(ToolFailure) as info:
            runner.call(send, {"n": 3}, CTX)
    finally:
        release.set()
    assert (info.value.kind, info.value.retries, calls) == ("timeout", 0, [3])


class Receipt(BaseModel):
    id: str
    cents: int


def test_output_schema_from_the_annotation_or_output_and_json_form() -> None:
    @tool
    def receipt(n: int) -> Receipt:
        return Receipt(id=f"r{n}", cents=n)

    @tool(output=list[int])
    def untyped(n: int):  # type: ignore[no-untyped-def]
        return [n, "x"]

    @tool
    def anything(n: int) -> Any:
        return object()

    assert receipt.to_json(receipt.fn(5)) == {"id": "r5", "cents": 5}
    assert receipt.check_output({"id": "r5", "cents": 5}) is None
    assert receipt.check_output({"id": "r5"}) == (
        "the result of 'receipt' does not match its schema: cents: Field required"
    )
    assert untyped.check_output([1, "x"]) == (
        "the result of 'untyped' does not match its schema: 1: Input should be a valid "
        "integer, unable to parse string as an integer"
    )
    assert anything.output is None
    assert anything.check_output(object()) is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"timeout": 0}, "tool 'f': timeout must be a number of seconds > 0, got 0"),
        ({"timeout": float("inf")}, "tool 'f': timeout must be a number of seconds > 0, got inf"),
        ({"retry": {"max_attempts": 2}}, "tool 'f': retry must be a langgraph.types.RetryPolicy"),
        (
            {"retry": RetryPolicy(max_attempts=0)},
            "tool 'f': retry.max_attempts must be >= 1, got 0",
        ),
    ],
)
def test_bad_timeout_and_retry_options_are_config_errors(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as info:

        @tool(**options)
        def f(n: int) -> int:
            return n

    assert str(info.value).startswith(message)


def test_tool_error_refuses_an_unknown_kind() -> None:
    with pytest.raises(ValueError, match="ToolError kind must be 'transient' or 'permanent'"):
        ToolError("x", kind="sometimes")  # type: ignore[arg-type]
