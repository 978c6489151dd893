"""/webhooks: the caller's tenant's webhook deliveries (the dead letter among them), and
sending a dead one again.

Deliveries are named by their endpoint's name: an endpoint's URL and secret never leave
the runtime's configuration.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from agentrt.readable import iso
from agentrt.service.auth import Caller, current_service
from agentrt.service.context import Service, tenant_listed
from agentrt.service.problems import Problem
from agentrt.webhooks import Delivery, DeliveryQuery

__all__ = ["DeliveryList", "DeliveryOut", "router"]

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
    found = await asyncio.to_thread(service.runtime.store.list_deliveries, query)
    return DeliveryList(deliveries=[delivery_out(d) for d in found])


@router.post("/webhooks/deliveries/{endpoint}/{event_id}/retry", response_model=DeliveryOut)
async def retry_delivery(
    endpoint: str, event_id: str, key: Caller, service: ServiceDep
) -> DeliveryOut:
    """Send a dead delivery again: pending at once, its tries counted afresh."""
    store = service.runtime.store

    def retry() -> Delivery | None:
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
        return store.list_deliveries(query)[0]

    found = await asyncio.to_thread(retry)
    if found is None:
        raise Problem(
            404,
            f"no delivery of {event_id!r} to endpoint {endpoint!r}; list them with "
            "GET /webhooks/deliveries",
            type="not-found",
        )
    return delivery_out(found)
