"""A run's live events (GET /runs/{id}/events): its event log as it grows, each status
change, and what its worker pushes while this process drives it; the review page's live
feed streams the same (``ui.live``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, Header, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent
from langgraph.checkpoint.base import BaseCheckpointSaver

from agentrt.events import StreamEvent
from agentrt.runtime import AgentRuntime, Run
from agentrt.service.auth import Caller, still_valid
from agentrt.service.context import Service
from agentrt.service.paths import RUN
from agentrt.service.problems import Problem
from agentrt.service.routes.runs import CallersRun, ServiceDep, going, shown_out
from agentrt.service.streamed import Pushed
from agentrt.state import TERMINAL, RunStatus
from agentrt.tracing.shown import shown_events

__all__ = ["first_unsent", "router", "stream_run"]

router = APIRouter(tags=["runs"])

_EVENT_ID_DIGITS = 18


def _last_event_id(last_event_id: Annotated[str | None, Header()] = None) -> int | None:
    """The id in Last-Event-ID, if one was sent; 400 for one that is no id."""
    text = (last_event_id or "").strip()
    if not text:
        return None
    if not (text.isascii() and text.isdigit() and len(text) <= _EVENT_ID_DIGITS):
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise Problem(
            400,
            f"Last-Event-ID {shown!r} is not an id this stream sent (a whole number of at "
            f"most {_EVENT_ID_DIGITS} digits); reconnect without it to get the run's events "
            "from the start",
            type="bad-last-event-id",
        )
    return int(text)


async def first_unsent(
    thread_id: str, service: ServiceDep, last: Annotated[int | None, Depends(_last_event_id)]
) -> int:
    """The index of the first event to send: the one after Last-Event-ID, or 0.

    An id is a log entry's index, so one past what the stream could have sent was never
    sent, and taking it would skip the entries up to it as they come: 400. A stream sends
    what the run's checkpoints keep, and for a run this process drives what its worker
    tells, which may be ahead of them (``RunWorker.logged``). That is read before the log:
    once the worker lets the run go, the checkpoints hold what it told. A route declares it
    after its run, whose tenant (API key or page cookie) is checked first.
    """
    if last is None:
        return 0
    told = service.worker.logged(thread_id)
    logged = max(told, len(await asyncio.to_thread(service.runtime.events, thread_id)))
    if last >= logged:
        have = f"ids 0 to {logged - 1}" if logged else "no events yet"
        raise Problem(
            400,
            f"Last-Event-ID {str(last)!r} is past the end of run {thread_id!r}'s event log "
            f"({have}), so this stream never sent it; reconnect with the id of the last "
            "event you received, or without Last-Event-ID to get the events from the start",
            type="bad-last-event-id",
        )
    return last + 1


async def _stream_slot(key: Caller, service: ServiceDep) -> AsyncIterator[None]:
    # Held until the stream ends: the request's dependencies close after its response.
    with service.streams.slot(key.key_id):
        yield


def _checkpoint_id(rt: AgentRuntime, thread_id: str) -> str | None:
    """The id of the run's latest checkpoint: cheap to read, and it changes whenever the
    event log can have grown (reading the log itself costs as much as the run is big)."""
    saver = rt.graph.checkpointer
    assert isinstance(saver, BaseCheckpointSaver)
    saved = saver.get_tuple({"configurable": {"thread_id": thread_id}})
    return None if saved is None else cast(str, saved.config["configurable"]["checkpoint_id"])


async def _told(
    told: asyncio.Queue[StreamEvent | None], service: Service, thread_id: str
) -> StreamEvent | None:
    """The next event the worker pushes for the run; None once a segment ended, the worker
    let the run go, or ``poll_interval`` passed (driven elsewhere, or waiting). What the
    worker pushed comes first: a segment that ended as its last events were pushed must
    not cut them off (the tokens and steps no look at the log could tell)."""
    with contextlib.suppress(asyncio.QueueEmpty):
        return told.get_nowait()
    got = asyncio.ensure_future(told.get())
    waits: set[asyncio.Future[Any]] = {got}
    if service.worker.driving(thread_id):
        waits.add(asyncio.ensure_future(service.worker.wait(thread_id)))
    try:
        await asyncio.wait(
            waits, timeout=service.settings.poll_interval, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        for wait in waits:
            wait.cancel()
    return got.result() if got.done() and not got.cancelled() else None


@router.get(
    f"{RUN}/events",
    response_class=EventSourceResponse,
    dependencies=[Depends(_stream_slot)],
)
async def run_events(
    run: CallersRun,
    key: Caller,
    service: ServiceDep,
    request: Request,
    sent: Annotated[int, Depends(first_unsent)],
) -> AsyncIterator[ServerSentEvent]:
    """Server-sent events: the run's event log as it grows, and each status change.

    Each log entry is an event named for its type (plan, policy, approval, observation,
    finish...) with its index as id, so a client that reconnects with Last-Event-ID gets
    only what it missed (400 for an id this stream never sent). ``status`` events carry
    the whole run. The stream ends when the run does and no follow-up waits for the
    thread (queued, or in this process's hands), as a join does. Content is shown as
    everywhere else (agentrt.tracing.shown): tools' sensitive fields, the values the log
    holds in them, and detected secrets masked. A key may hold ``max_streams_per_key``
    streams open at once (429 past it).

    A run this process drives is pushed as it happens (``RunWorker.watch``): its log
    entries, and besides them, without an id, what only a watcher needs (step_started,
    token, tool_call, tool_result, gate, budget_warning, step_ended, custom; see
    ``agentrt.events.StreamEvent``). A model's tokens are held back where a secret could
    still be completing, and sent once it cannot (``agentrt.service.streamed``): joined,
    they are the answer's log entry as shown. A run another process drives (an ``agentrt
    worker``) is looked at every ``poll_interval``.

    The key is looked up again each time the stream wakes: once it is revoked, the stream
    ends, sending nothing more (reconnecting is then refused, 401).
    """
    async for event in stream_run(run, service, request, sent, partial(still_valid, request, key)):
        yield event


async def stream_run(
    run: Run,
    service: Service,
    request: Request,
    sent: int,
    allowed: Callable[[], Awaitable[bool]],
) -> AsyncIterator[ServerSentEvent]:
    """The events of ``run_events`` from the log's entry ``sent`` on, for a caller whom
    ``allowed`` says at each wake-up may still have them (the key it opened the stream with
    is still active); the stream ends once it may not."""
    rt = service.runtime
    shown_as: tuple[RunStatus, int] | None = None
    thread_id = run.thread_id
    seen: str | None = None
    pushed = Pushed(rt)
    look = "all"
    with service.worker.watch(thread_id) as told:
        while True:
            if look == "all":
                # The run first: a run that has ended wrote its last checkpoint before, so
                # the look at the log that follows sees all of it.
                current = await asyncio.to_thread(rt.get, thread_id)
                # The log is read only when a new checkpoint says it may have grown.
                checkpoint = await asyncio.to_thread(_checkpoint_id, rt, thread_id)
                if checkpoint != seen:
                    seen = checkpoint
                    log = pushed.log = await asyncio.to_thread(rt.events, thread_id)
                    shown_log = await asyncio.to_thread(
                        shown_events, log, rt.redactor, rt.tools.sensitive_of, start=sent
                    )
                    for index, event in enumerate(shown_log, start=sent):
                        yield ServerSentEvent(data=event, event=log[index]["type"], id=str(index))
                    sent = max(sent, len(log))
            elif look == "status":
                current = await asyncio.to_thread(rt.get, thread_id)
                if current.status in TERMINAL and told.empty():
                    look = "all"  # ended past what was pushed: read it all
                    continue
                if current.status in TERMINAL:
                    look = ""  # what was pushed first, in its order; the log after
            # A follow-up answered between two looks is a change too: its output is new.
            if look and (current.status, current.message) != shown_as:
                shown_as = (current.status, current.message)
                out = await shown_out(service, current, pushed.known())
                yield ServerSentEvent(data=out.model_dump(), event="status")
            if look and (
                await request.is_disconnected()
                # An ended thread goes on while a message waits for it or this process
                # has it in hand, as a join waits it out; what was pushed is sent first.
                or (
                    current.status in TERMINAL
                    and told.empty()
                    and not await going(current, service)
                )
            ):
                return
            told_event = await _told(told, service, thread_id)
            # Woken: whatever comes next goes only to a caller still allowed it.
            if not await allowed():
                return
            look = "all" if told_event is None else ""
            if told_event is not None:
                for sse in pushed.told(told_event, sent):
                    yield sse
                if told_event.index is not None and told_event.index > len(pushed.log):
                    look = "all"  # some were missed: read the log again
                if told_event.index is not None:
                    sent = max(sent, len(pushed.log))
                if told_event.type == "step_ended":
                    look = "status"
