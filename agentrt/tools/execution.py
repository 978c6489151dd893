"""Calling a tool under its contract: timeout, retry of transient errors, one error kind.

Every failure leaves here as a ToolFailure whose kind is one of the contract's kinds
(transient, permanent, timeout), with the number of retries it took. Sleep, randomness and
the clock are injected, so tests drive backoff and deadlines without waiting.

Async tools run on the tool loop (agentrt.tools.loop), whether the caller is sync
(``call``) or async (``acall``): one loop for every call, so a session a toolset opened on
it stays usable. The retry loop and one attempt are each written once, as steps
(agentrt.steps), and driven either way; ``attempts`` is the retry loop for a procedure
that drives it inside its own.
"""

from __future__ import annotations

import asyncio
import inspect
import random
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

from langgraph.types import RetryPolicy

from agentrt.artifacts import is_artifact_ref
from agentrt.limits import SizeLimits, error_text, json_size
from agentrt.state import storable_text, unstorable
from agentrt.steps import Step, Steps, asynchronous, blocking, synchronous
from agentrt.tools.artifacts import refs_as_json, result_artifact
from agentrt.tools.contract import ToolContext, ToolError, ToolSpec
from agentrt.tools.loop import LoopThread, LoopTimeout, default_loop

__all__ = ["Called", "ToolFailure", "ToolRunner", "backoff"]

FailureKind = Literal["transient", "permanent", "timeout"]


class ToolFailure(Exception):
    """A tool call that did not produce a result, classified by the error contract."""

    def __init__(self, kind: FailureKind, message: str, *, retries: int = 0) -> None:
        self.kind: FailureKind = kind
        self.message = message
        self.retries = retries
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class Called:
    """A tool's result, and how many retries it took to get it."""

    result: Any
    retries: int


def backoff(policy: RetryPolicy, failures: int, rand: Callable[[], float]) -> float:
    """Seconds to wait after the ``failures``-th failure: LangGraph's RetryPolicy formula."""
    interval = min(
        policy.max_interval, policy.initial_interval * policy.backoff_factor ** (failures - 1)
    )
    return interval + rand() if policy.jitter else interval


def _matches(retry_on: Any, exc: Exception) -> bool:
    if isinstance(retry_on, type):
        return isinstance(exc, retry_on)
    if isinstance(retry_on, Sequence):
        return isinstance(exc, tuple(retry_on))
    return bool(retry_on(exc))


def classify(spec: ToolSpec, exc: Exception) -> FailureKind:
    """The contract kind of an exception a tool raised.

    A ToolError says its own kind. Any other exception is transient only where calling
    again cannot repeat an effect (a read, or an idempotent tool) and the tool's
    RetryPolicy.retry_on matches it: a non-idempotent tool that failed in an unknown way
    may have half-acted, so only its own ToolError(kind="transient") is retried.
    """
    if isinstance(exc, ToolError):
        return exc.kind
    if isinstance(exc, TimeoutError):
        return "timeout"
    if spec.effect == "read" or spec.idempotent:
        return "transient" if _matches(spec.retry.retry_on, exc) else "permanent"
    return "permanent"


def _describe(exc: Exception) -> str:
    return str(exc) if isinstance(exc, ToolError) else f"{type(exc).__name__}: {exc}"


@dataclass(frozen=True, kw_only=True)
class ToolRunner:
    """Calls tools with their timeout and retry policy; its time sources are injectable."""

    sleep: Callable[[float], None] = time.sleep
    """Waits between retries; tests pass a recorder."""
    rand: Callable[[], float] = random.random
    """Jitter source in [0, 1)."""
    clock: Callable[[], float] = time.time
    """Epoch seconds, compared with ctx.deadline."""
    max_result_bytes: int = SizeLimits().result_bytes
    """A result larger than this, as JSON, is a permanent failure (it would be stored)."""
    inline_result_bytes: int | None = None
    """A result larger than this, as JSON, is kept as an artifact (ctx.artifacts) and the
    run keeps its reference (SizeLimits.inline_result_bytes); None: every result inline."""
    loop: LoopThread | None = None
    """Where async tools run; None: the process-wide default_loop(). A runtime passes its own."""
    asleep: Callable[[float], Awaitable[None]] | None = None
    """Waits between retries on the async path; None: asyncio.sleep if ``sleep`` is
    time.sleep, else ``sleep`` in a worker thread (so an injected recorder serves both)."""

    def tool_loop(self) -> LoopThread:
        """The loop async tools run on."""
        return self.loop if self.loop is not None else default_loop()

    def _call(
        self,
        spec: ToolSpec,
        args: Mapping[str, Any],
        ctx: ToolContext,
        *,
        fn: Callable[..., Any] | None = None,
    ) -> Steps[Called]:
        """Call ``spec`` (or its hook ``fn``, its ``prepare``) until it succeeds or the
        contract says stop; the result comes back in its JSON form (a hook's: the preview's).

        Transient failures are retried with backoff and jitter; a timeout of a tool that is
        not idempotent is never retried here (the caller decides whether it is in doubt).
        Async callers never block their loop: sync tools go to a worker thread, async ones
        to the tool loop.
        """
        policy = spec.retry
        failures = 0
        while True:
            try:
                result = yield from self._call_once(spec, args, ctx, fn=fn)
                # The JSON form (a hook's: the preview's) is what is kept, so a credential
                # the tool echoes is cut out of that: a field its repr hides is in it too.
                out = ctx.credentials.scrub(spec.to_json(result, preview=fn is not None))
            except Exception as exc:
                kind = classify(spec, exc)
                # Cut after the scrub, so no part of a credential is left at the cut: the
                # model, the log and the spans carry what failed, not a body quoted whole.
                # Made storable here too, once: the message goes on to the ledger, the event
                # log, the next request's digest and spans, and a NUL or a lone surrogate
                # (raw bytes decoded with surrogateescape) would fail the run in any of them.
                message = storable_text(error_text(ctx.credentials.scrub(_describe(exc))))
            else:
                if fn is None:
                    out = refs_as_json(out)
                if problem := self._unkeepable(spec, out):
                    raise ToolFailure("permanent", problem, retries=failures)
                if fn is None and self._too_large_to_inline(out):
                    kept = blocking(result_artifact, ctx.artifacts, spec.name, ctx.step_id, out)
                    out = (yield kept).to_json()
                return Called(out, failures)
            retryable = kind == "transient" or (kind == "timeout" and spec.idempotent)
            failures += 1
            if not retryable or failures >= policy.max_attempts:
                raise ToolFailure(kind, message, retries=failures - 1)
            wait = backoff(policy, failures, self.rand)
            if ctx.deadline is not None and self.clock() + wait >= ctx.deadline:
                raise ToolFailure(
                    kind,
                    f"{message} (no retry: the run's deadline comes first)",
                    retries=failures - 1,
                )
            yield Step(partial(self.sleep, wait), partial(self._asleep, wait))

    call = synchronous(_call)
    acall = asynchronous(_call)
    attempts = _call
    """The retry loop as steps, for a ledger's or a node's own procedure (``yield from``)."""

    async def _asleep(self, seconds: float) -> None:
        if self.asleep is not None:
            await self.asleep(seconds)
        elif self.sleep is time.sleep:
            await asyncio.sleep(seconds)
        else:
            await asyncio.to_thread(self.sleep, seconds)

    def _unkeepable(self, spec: ToolSpec, result: Any) -> str | None:
        """Why a result cannot be kept (checkpoints, ledger, spans), or None if it can."""
        if problem := unstorable(result, "result"):
            # Kept as it is, it would fail the run at the next checkpoint.
            return f"tool {spec.name!r} returned a value that cannot be stored: {problem}"
        size = json_size(result)
        if size > self.max_result_bytes:
            return (
                f"tool {spec.name!r} returned {size:,} bytes, over the runtime's limit of "
                f"{self.max_result_bytes:,} (SizeLimits.result_bytes); return less (a summary "
                "or a page of it), or raise the limit"
            )
        return None

    def _too_large_to_inline(self, result: Any) -> bool:
        """True if the run should keep ``result`` as an artifact and only its reference:
        past inline_result_bytes, and not a reference already."""
        if self.inline_result_bytes is None or is_artifact_ref(result):
            return False
        return json_size(result) > self.inline_result_bytes

    def _bound(self, spec: ToolSpec, ctx: ToolContext) -> float | None:
        """Seconds one attempt may take: the tool's timeout, cut to the run's deadline."""
        timeout = spec.timeout
        if ctx.deadline is not None:
            left = max(0.0, ctx.deadline - self.clock())
            timeout = left if timeout is None else min(timeout, left)
        return timeout

    def _call_once(
        self,
        spec: ToolSpec,
        args: Mapping[str, Any],
        ctx: ToolContext,
        *,
        fn: Callable[..., Any] | None = None,
    ) -> Steps[Any]:
        """One attempt, bounded by the tool's timeout (and the run's deadline)."""
        timeout = self._bound(spec, ctx)
        target = fn or spec.fn
        kwargs = spec.bind(args, ctx, fn)
        if not inspect.iscoroutinefunction(target):
            return (yield blocking(_call_sync, target, kwargs, timeout, spec.name))
        loop = self.tool_loop()
        try:
            return (
                yield Step(
                    lambda: loop.run(target(**kwargs), timeout),
                    lambda: loop.arun(target(**kwargs), timeout),
                )
            )
        except LoopTimeout as exc:
            raise _timed_out(spec.name, exc.timeout) from None

    call_once = synchronous(_call_once)
    acall_once = asynchronous(_call_once)


def _timed_out(name: str, timeout: float) -> TimeoutError:
    return TimeoutError(f"tool {name!r} did not finish within its timeout of {timeout:g}s")


def _call_sync(
    target: Callable[..., Any], kwargs: dict[str, Any], timeout: float | None, name: str
) -> Any:
    """A sync tool: in this thread, or in a worker thread when it has a timeout."""
    if timeout is None:
        return target(**kwargs)
    return _run_in_thread(target, kwargs, timeout, name)


def _run_in_thread(
    target: Callable[..., Any], kwargs: dict[str, Any], timeout: float | None, name: str
) -> Any:
    """Run a sync tool in a worker thread and wait at most ``timeout`` for it.

    Python cannot kill a thread: a timed-out sync tool goes on in the background (daemon,
    so it never holds the process open) and its late result is dropped. Tools that must be
    stopped for real belong in the sandboxed subprocess runner.
    """
    outcome: dict[str, Any] = {}
    finished = threading.Event()

    def work() -> None:
        try:
            outcome["result"] = target(**kwargs)
        except BaseException as exc:  # handed to the caller's thread below
            outcome["error"] = exc
        finally:
            finished.set()

    threading.Thread(target=work, name=f"agentrt-tool-{name}", daemon=True).start()
    if not finished.wait(timeout):
        assert timeout is not None
        raise _timed_out(name, timeout)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]
