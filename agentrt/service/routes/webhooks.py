"""/webhooks: the caller's tenant's webhook deliveries (the dead letter among them), and
sending a dead one again.

Deliveries are named by their endpoint's name: an endpoint's URL and secret never leave
the runtime's configuration. The outbox keeps a run event's goal and error as they were
written; they are shown here as the dispatcher sends them and ``GET /runs/{id}`` shows the
run: masked with the secret values the run's log holds (a goal may repeat a sensitive
argument).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from agentrt.errors import UnknownRun
from agentrt.readable import iso
from agentrt.service.auth import Caller, current_service
from agentrt.service.context import Service, tenant_listed
from agentrt.service.problems import Problem
from agentrt.webhooks import Delivery, DeliveryQuery
from agentrt.webhooks.dispatcher import shown_event

__all__ = ["DeliveryList", "DeliveryOut", "deliveries_out", "router"]

router = APIRouter(tags=["webhooks"])

ServiceDep = Annotated[Service, Depends(current_service)]


class DeliveryOut(BaseModel):
    """One event for one endpoint."""

    endpoint: str
    event_id: str
    type: str
    thread_id: str
    tenant: str | None
    status: Literal["pending", "delivered", "dead"]
    attempts: int
    next_at: str | None
    last_error: str | None
    last_status: int | None
    delivered_at: str | None
    created_at: str
    data: dict[str, Any]


class DeliveryList(BaseModel):
    deliveries: list[DeliveryOut]


def delivery_out(d: Delivery) -> DeliveryOut:
    """``d`` in the API's shape, its event's data as it is: show it through ``deliveries_out``."""
    return DeliveryOut(
        endpoint=d.endpoint,
        event_id=d.event.id,
        type=d.event.type,
        thread_id=d.event.thread_id,
        tenant=d.event.tenant,
        status=d.status.value,
        attempts=d.attempts,
        next_at=iso(d.next_at) if d.status.value == "pending" else None,
        last_error=d.last_error,
        last_status=d.last_status,
        delivered_at=iso(d.delivered_at) if d.delivered_at is not None else None,
        created_at=iso(d.event.created_at),
        data=d.event.data,
    )


def deliveries_out(service: Service, found: Sequence[Delivery]) -> list[DeliveryOut]:
    """``found`` as the caller may read them: each event as the dispatcher sends it
    (``shown_event``), its goal and error masked with the secret values its run's log holds
    (``service.secrets``, each run's row read once). A delivery whose run was pruned since
    it was listed is left out, gone with its run: its log can no longer say what to mask.
    It may read logs: call it off the event loop."""
    rt = service.runtime
    read: dict[str, list[Any]] = {}

    def secrets_of(thread_id: str) -> list[Any]:
        if thread_id not in read:
            read[thread_id] = service.secrets.known(rt.get(thread_id))
        return read[thread_id]

    out = []
    for d in found:
        try:
            event = shown_event(d.event, rt.redactor, secrets_of)
        except UnknownRun:
            continue
        out.append(delivery_out(replace(d, event=event)))
    return out


@router.get("/webhooks/deliveries", response_model=DeliveryList)
async def list_deliveries(
    key: Caller,
    service: ServiceDep,
    status: Annotated[
        Literal["pending", "delivered", "dead"] | None,
        Query(description="dead: the dead letter, given up after the retry schedule."),
    ] = None,
    endpoint: Annotated[str | None, Query()] = None,
    thread_id: Annotated[str | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> DeliveryList:
    """The caller's tenant's deliveries, newest event first."""
    query = DeliveryQuery(
        status=status,
        endpoint=endpoint,
        tenant=tenant_listed(key.principal),
        thread_id=thread_id,
        limit=limit,
    )

    def listed() -> list[DeliveryOut]:
        return deliveries_out(service, service.runtime.store.list_deliveries(query))

    return DeliveryList(deliveries=await asyncio.to_thread(listed))


@router.post("/webhooks/deliveries/{endpoint}/{event_id}/retry", response_model=DeliveryOut)
async def retry_delivery(
    endpoint: str, event_id: str, key: Caller, service: ServiceDep
) -> DeliveryOut:
    """Send a dead delivery again: pending at once, its tries counted afresh."""
    store = service.runtime.store

    def retry() -> DeliveryOut | None:
        query = DeliveryQuery(
            endpoint=endpoint, tenant=tenant_listed(key.principal), event_id=event_id
        )
        mine = store.list_deliveries(query)
        if not mine:
            return None
        if not store.retry_delivery(endpoint, event_id, now=service.runtime.clock()):
            raise Problem(
                409,
                f"delivery of {event_id!r} to {endpoint!r} is {mine[0].status.value}, not dead; "
                "only a dead delivery is sent again by hand",
                type="not-dead",
            )
        shown = deliveries_out(service, store.list_deliveries(query))
        return shown[0] if shown else None

    found = await asyncio.to_thread(retry)
    if found is None:
        raise Problem(
            404,
            f"no delivery of {event_id!r} to endpoint {endpoint!r}; list them with "
            "GET /webhooks/deliveries",
            type="not-found",
        )
    return found
