"""What every route of one app shares: the runtime, the background worker, the limits."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypedDict

from agentrt.approvals import ApprovalRequest
from agentrt.errors import ConfigError, InvalidDecision, UnknownRun
from agentrt.logs import get_logger
from agentrt.principal import Principal
from agentrt.runtime import AgentRuntime, Run
from agentrt.service.problems import Problem
from agentrt.service.ratelimit import RateLimiter
from agentrt.service.run_secrets import RunSecrets
from agentrt.service.worker import RunWorker

__all__ = [
    "Service",
    "ServiceOptions",
    "ServiceSettings",
    "StreamSlots",
    "acts_in_a_tenant",
    "picks_tenant",
    "tenant_listed",
]

logger = get_logger("agentrt.service")


@dataclass(frozen=True, kw_only=True)
class ServiceSettings:
    """How one app serves its runtime: the keyword arguments of create_app."""

    rate_limit: str = "600/minute"
    """Requests one API key may make, as "N/second|minute|hour|day" (429 past it)."""
    auth_failure_limit: str = "30/minute"
    """Failed authentications (no key, an unknown or revoked one) one client address may
    make; past it, that address gets 429 for every key until the window moves on."""
    login_limit: str = "10/minute"
    """Sign-in form posts one client address may make to /ui/login (429 past it)."""
    max_streams_per_key: int = 8
    """Event streams (GET /runs/{id}/events) one API key may hold open at once (429 past it)."""
    max_goal_bytes: int = 64 * 1024
    """Longest goal POST /runs accepts, in UTF-8 bytes (422 past it)."""
    max_body_bytes: int = 256 * 1024
    """Largest request body accepted (413 past it)."""
    max_concurrent_runs: int = 64
    """Runs the worker drives at once; more wait their turn."""
    drive_runs: bool = True
    """False: the API drives no run. It writes runs (pending) and decisions and answers;
    workers sharing the database (``agentrt worker``) claim the runs and carry them on."""
    executor_threads: int | None = None
    """Size of the loop's default thread pool, where the graph's nodes run; None: the loop's."""
    sweep_every: float | None = 30.0
    """Seconds between sweeps that expire overdue approvals; None: no sweep."""
    resume_stopped: bool = True
    """On startup, carry on the runs a process left mid-way."""
    poll_interval: float = 0.5
    """Seconds between the looks an event stream or a join takes at a run this process
    does not drive."""
    shutdown_grace: float = 10.0
    """Seconds runs in hand get to finish on shutdown before they are stopped."""

    def __post_init__(self) -> None:
        if not isinstance(self.drive_runs, bool):
            raise ConfigError(f"drive_runs must be True or False, got {self.drive_runs!r}")
        optional = {"executor_threads", "sweep_every"}
        for name, positive in (
            ("max_body_bytes", _positive_int),
            ("max_streams_per_key", _positive_int),
            ("max_goal_bytes", _positive_int),
            ("max_concurrent_runs", _positive_int),
            ("executor_threads", _positive_int),
            ("sweep_every", _positive_seconds),
            ("poll_interval", _positive_seconds),
            ("shutdown_grace", _seconds),
        ):
            value = getattr(self, name)
            if not (value is None and name in optional) and not positive(value):
                raise ConfigError(f"{name} must be {positive.__doc__}, got {value!r}")


class ServiceOptions(TypedDict, total=False):
    """create_app's keyword arguments: ServiceSettings' fields, any of them, as typed there
    (where each has its default and what it means)."""

    rate_limit: str
    auth_failure_limit: str
    login_limit: str
    max_streams_per_key: int
    max_goal_bytes: int
    max_body_bytes: int
    max_concurrent_runs: int
    drive_runs: bool
    executor_threads: int | None
    sweep_every: float | None
    resume_stopped: bool
    poll_interval: float
    shutdown_grace: float


def _positive_int(value: object) -> bool:
    """a positive int"""
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _seconds(value: object) -> bool:
    """a number of seconds >= 0"""
    return isinstance(value, int | float) and not isinstance(value, bool) and value >= 0


def _positive_seconds(value: object) -> bool:
    """a number of seconds > 0"""
    return _seconds(value) and value != 0


class StreamSlots:
    """The event streams each API key holds open, at most ``limit`` at once per key.

    Kept in this process's memory, like the rate limits.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: dict[str, int] = {}

    def open(self, key_id: str) -> int:
        """How many streams ``key_id`` holds open now."""
        return self._open.get(key_id, 0)

    @contextmanager
    def slot(self, key_id: str) -> Iterator[None]:
        """Hold one of the key's slots for the block; a 429 Problem if none is free."""
        if self.open(key_id) >= self.limit:
            raise Problem(
                429,
                f"this API key already has {self.limit} event streams open, the most it may "
                "hold at once; close one (or follow the run with GET /runs/{id}) and retry",
                type="too-many-streams",
                headers={"Retry-After": "5"},
                retry_after=5,
                max_streams_per_key=self.limit,
            )
        self._open[key_id] = self.open(key_id) + 1
        try:
            yield
        finally:
            left = self._open.pop(key_id) - 1
            if left:
                self._open[key_id] = left


def picks_tenant(principal: Principal) -> bool:
    """True for a caller of no one tenant (``Principal.ALL_TENANTS``): it reads and decides
    every tenant's runs and requests, and its lists may be narrowed to one tenant."""
    return principal.tenant in (None, Principal.ALL_TENANTS)


def acts_in_a_tenant(principal: Principal, act: str) -> None:
    """Refuse (403) a caller of every tenant (``Principal.ALL_TENANTS``) who asks to ``act``
    as itself: to start a run, send a message, carry a run on.

    Such a key reads every tenant's runs and decides their requests (README), and no more:
    what it started or sent would act for a principal of no tenant, which a policy rule
    naming the thread's tenant does not match. Refused before any run is looked up, so the
    answer is the same for every thread id.
    """
    if principal.tenant == Principal.ALL_TENANTS:
        raise Problem(
            403,
            f"a key of every tenant (tenant {Principal.ALL_TENANTS!r}) may only read runs and "
            f"decide approval requests, of any tenant; it cannot {act}. Do it with a key of "
            "the run's own tenant (agentrt keys create --tenant <tenant>)",
            type="all-tenants-key",
        )


def tenant_listed(principal: Principal, picked: str | None = None) -> str | None:
    """Whose runs and requests a list shows ``principal``: its own tenant's; for a caller
    of every tenant, the one it ``picked``, or every tenant's (None)."""
    return (picked or None) if picks_tenant(principal) else principal.tenant


@dataclass(eq=False)
class Service:
    runtime: AgentRuntime
    settings: ServiceSettings
    worker: RunWorker
    rate_limiter: RateLimiter
    page_polls: RateLimiter
    """The review page's own background requests per key (a run page's polls and live
    feed), counted apart: a reviewer's open tabs never use up the rate their decisions
    need."""
    auth_failures: RateLimiter
    """Failed authentications per client address."""
    logins: RateLimiter
    """Sign-in form posts per client address."""
    streams: StreamSlots = field(init=False)
    secrets: RunSecrets = field(init=False)
    """What each run's log holds to mask its texts with, read once per state of its row."""
    started: bool = field(default=False, init=False)
    """True while the app's lifespan runs (its own, or agentrt_lifespan's when mounted)."""
    _told_unstarted: bool = field(default=False, init=False, repr=False)

    def __post_init__(self) -> None:
        self.streams = StreamSlots(self.settings.max_streams_per_key)
        self.secrets = RunSecrets(self.runtime)

    def check_started(self) -> None:
        """Say once, in the log, that requests are served with no lifespan running: mounted
        in another app without agentrt_lifespan, no stopped run is carried on, no approval
        expires and shutdown gives runs no grace."""
        if self.started or self._told_unstarted:
            return
        self._told_unstarted = True
        logger.warning(
            "agentrt is serving requests but its lifespan is not running, so stopped runs "
            "are not carried on, approvals do not expire and shutdown has no grace; an app "
            "mounted in yours needs `async with agentrt_lifespan(app):` in your lifespan "
            "(from agentrt.service import agentrt_lifespan)"
        )

    async def run_for(self, principal: Principal, thread_id: str) -> Run:
        """The run, if it belongs to the caller's tenant (any, for a caller of every tenant:
        ``Principal.decides_for``); 404 (as for no run) otherwise."""
        return await asyncio.to_thread(self.read_run, principal, thread_id)

    def read_run(self, principal: Principal, thread_id: str) -> Run:
        """``run_for``, read in the calling thread: off the event loop."""
        try:
            run = self.runtime.get(thread_id)
        except UnknownRun:
            run = None
        if run is None or not principal.decides_for(run.principal.tenant):
            raise Problem(
                404,
                f"no run with thread id {thread_id!r} in your tenant; list yours with GET /runs",
                type="unknown-run",
            )
        return run

    async def run_acted_on(self, principal: Principal, thread_id: str, act: str) -> Run:
        """The run, for a caller who will ``act`` on it as itself: of the caller's own tenant
        (404 otherwise, as ``run_for``); a caller of every tenant only reads and decides
        (403: ``acts_in_a_tenant``)."""
        acts_in_a_tenant(principal, act)
        return await self.run_for(principal, thread_id)

    async def approval_for(self, principal: Principal, approval_id: str) -> ApprovalRequest:
        """The request, if it belongs to the caller's tenant (any, for a caller of every
        tenant); 404 otherwise."""
        try:
            found = await asyncio.to_thread(self.runtime.approval, approval_id)
        except InvalidDecision:
            found = None
        if found is None or not principal.decides_for(found.tenant):
            raise Problem(
                404,
                f"no approval request with id {approval_id!r} in your tenant; list the "
                "pending ones with GET /approvals",
                type="unknown-approval",
            )
        return found
