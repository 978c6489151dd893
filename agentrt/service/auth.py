"""Who is calling: an API key, looked up by its hash, is a Principal with roles and a tenant.

The API takes the key as ``Authorization: Bearer <key>`` (or ``X-API-Key``); the review page
keeps it in an HttpOnly, SameSite=Strict cookie set by its sign-in form. Either way the
caller's tenant bounds everything it may see: another tenant's runs and approvals answer
404, exactly as ids that do not exist.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from fastapi.openapi.models import APIKey, APIKeyIn
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.security.base import SecurityBase

from agentrt.records import ApiKey
from agentrt.service.context import Service
from agentrt.service.problems import Problem

__all__ = [
    "COOKIE",
    "Authenticating",
    "Caller",
    "HeaderKey",
    "authenticate",
    "authenticate_then",
    "client_address",
    "current_service",
    "key_from_request",
    "service_of",
    "still_valid",
    "unknown_key",
]

COOKIE = "agentrt_key"

T = TypeVar("T")


def service_of(request: Request) -> Service:
    service: Service = request.app.state.agentrt
    service.check_started()
    return service


async def current_service(request: Request) -> Service:
    """``service_of`` as a dependency. A coroutine, because FastAPI sends every plain
    function dependency to its thread pool and back: a thread hop on every request for a
    lookup that takes microseconds."""
    return service_of(request)


def key_from_request(request: Request, *, cookie: bool = False) -> str | None:
    """The API key a request carries, or None."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    if key := request.headers.get("x-api-key"):
        return key.strip()
    return request.cookies.get(COOKIE) if cookie else None


def client_address(request: Request) -> str:
    """Who is asking, as far as the connection tells: the client's IP address."""
    return request.client.host if request.client else "unknown"


async def authenticate(request: Request, key: str | None, *, polling: bool = False) -> ApiKey:
    """The active key ``key`` names, counted against its rate; 401 or 429 otherwise.
    ``polling``: a review page's own background request (its poll, its live feed),
    counted against the key's rate for those (``Service.page_polls``), not the one its
    person's own requests, decisions among them, need.

    A failure (no key, an unknown or revoked one) counts against the client address; an
    address over ``auth_failure_limit`` gets 429 before any key it sends is looked at, so
    guessing keys from it stops, and a right guess there looks like any other.
    """
    found, _ = await authenticate_then(request, key, _nothing, polling=polling)
    return found


def _nothing(key: ApiKey) -> None:
    return None


async def authenticate_then(
    request: Request, key: str | None, then: Callable[[ApiKey], T], *, polling: bool = False
) -> tuple[ApiKey, T]:
    """``authenticate``, then ``then(found)`` (a blocking read the request needs, such as
    its run) in the same trip to a worker thread: a trip, a hand-off each way, cost a
    GET /runs/{id} an eighth of its CPU. ``then`` runs only for a key found and within
    its rate, as a read made after ``authenticate`` would; what it raises (a 404 Problem)
    is the request's answer."""
    service = service_of(request)
    address = client_address(request)
    service.auth_failures.refuse_if_over(address)
    if not key:
        service.auth_failures.note(address)
        raise Problem(
            401,
            "this endpoint needs an API key: send 'Authorization: Bearer <key>' "
            "(make one with `agentrt keys create`)",
            type="unauthenticated",
            headers={"WWW-Authenticate": 'Bearer realm="agentrt"'},
        )
    given = key
    limiter = service.page_polls if polling else service.rate_limiter

    def look() -> tuple[ApiKey, T] | None:
        found = service.runtime.keys.authenticate(given)
        if found is None:
            return None
        limiter.hit(found.key_id)  # thread-safe; a key over its rate reads nothing more
        return found, then(found)

    looked = await asyncio.to_thread(look)
    if looked is None:
        service.auth_failures.note(address)
        raise unknown_key(key)
    return looked


def unknown_key(key: str) -> Problem:
    """The 401 for a key that is unknown, or was revoked (also while its answer waited)."""
    return Problem(
        401,
        f"API key {_hint(key)!r} is unknown or revoked; ask for a new one (`agentrt keys create`)",
        type="unauthenticated",
        headers={"WWW-Authenticate": 'Bearer realm="agentrt", error="invalid_token"'},
    )


async def still_valid(request: Request, key: ApiKey, *, cookie: bool = False) -> bool:
    """True while the key ``request`` was let in with (``key``) is still active: looked up
    again by its hash, and neither counted against its rate nor as a failure. An answer that
    goes on (an event stream) asks at each wake-up, so a key revoked meanwhile ends it, as
    it refuses the key's next request. ``cookie``: the review page's, which keeps the key in
    its cookie."""
    given = key_from_request(request, cookie=cookie)
    if not given:
        return False
    found = await asyncio.to_thread(service_of(request).runtime.keys.authenticate, given)
    return found is not None and found.key_id == key.key_id


class _HeaderKeyScheme(SecurityBase):
    """``X-API-Key`` as /openapi.json declares it; it reads nothing, since the key is read
    by ``key_from_request`` (which also takes the review page's cookie)."""

    def __init__(self) -> None:
        self.model = APIKey.model_validate(
            {"in": APIKeyIn.header, "name": "X-API-Key", "description": "The same key."}
        )
        self.scheme_name = "APIKeyHeader"

    async def __call__(self) -> None:
        return None


HeaderKey = Annotated[None, Depends(_HeaderKeyScheme())]
"""A parameter of every ``Authenticating`` dependency: X-API-Key declared beside it."""


class Authenticating(SecurityBase):
    """A dependency that authenticates its request (its ``__call__``, in a subclass, with a
    ``HeaderKey`` parameter), and to /openapi.json the bearer scheme the key comes in.

    FastAPI declares each dependency that is a ``SecurityBase`` as a scheme, and solves
    every dependency on every request, cached or not: about 80,000 instructions each
    (FastAPI 0.165), where a whole GET /runs/{id} is under two million. fastapi.security's
    schemes, each a dependency of its own beside the one that read the key, made the key
    three.
    """

    def __init__(self) -> None:
        self.model = HTTPBearerModel(description="An API key: `agentrt keys create`.")
        self.scheme_name = "HTTPBearer"


class _ApiCaller(Authenticating):
    async def __call__(self, request: Request, _header_key: HeaderKey) -> ApiKey:
        return await authenticate(request, key_from_request(request))


Caller = Annotated[ApiKey, Depends(_ApiCaller())]
"""The API key of the request (401 without a valid one, 429 over its rate)."""


def _hint(key: str) -> str:
    """Enough of a key to recognise it in a message, never enough to use it."""
    return key[:16] + "..." if len(key) > 16 else key
