"""The run page's live feed: the API's event stream of a run, signed in by the page's cookie.

The page's script (static/ui.js) opens it with EventSource, which sends cookies but no
Authorization header; what it streams is ``routes.run_events.run_events``, each event with its
line in words (``agentrt.events.describe`` of the masked event) for the page to show. It
is the page's own request, counted against the key's rate for those (``Poller``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent

from agentrt.events import describe
from agentrt.runtime import Run
from agentrt.service.auth import still_valid
from agentrt.service.paths import RUN
from agentrt.service.problems import Problem
from agentrt.service.routes.run_events import first_unsent, stream_run
from agentrt.service.ui.routes import PageError, Poller, ServiceDep

__all__ = ["router"]

router = APIRouter(prefix="/ui", include_in_schema=False)


async def _page_run(thread_id: str, key: Poller, service: ServiceDep) -> Run:
    try:
        return await service.run_for(key.principal, thread_id)
    except Problem as exc:
        raise PageError(exc.status, f"No run {thread_id!r} in your tenant.") from None


async def _slot(key: Poller, service: ServiceDep) -> AsyncIterator[None]:
    # As the API's stream: held until the stream ends, max_streams_per_key a key.
    with service.streams.slot(key.key_id):
        yield


@router.get(
    f"{RUN}/events",
    response_class=EventSourceResponse,
    dependencies=[Depends(_slot)],
)
async def run_feed(
    run: Annotated[Run, Depends(_page_run)],
    key: Poller,
    service: ServiceDep,
    request: Request,
    sent: Annotated[int, Depends(first_unsent)],
) -> AsyncIterator[ServerSentEvent]:
    """The run's events as /runs/{id}/events sends them, each with a ``line`` to show;
    it ends once the key the page signed in with is revoked."""
    allowed = partial(still_valid, request, key, cookie=True)
    async for event in stream_run(run, service, request, sent, allowed):
        data: Any = event.data
        if event.event != "status" and isinstance(data, dict):
            data = {**data, "line": describe(data)}
        yield ServerSentEvent(data=data, event=event.event, id=event.id)
