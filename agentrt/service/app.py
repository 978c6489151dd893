"""create_app: the runtime behind an HTTP API (FastAPI), with runs driven in the background."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI
from starlette.routing import Mount
from starlette.types import ASGIApp
from typing_extensions import Unpack

from agentrt import __version__
from agentrt.errors import ConfigError
from agentrt.logs import get_logger
from agentrt.runtime import AgentRuntime
from agentrt.service import ui
from agentrt.service.auth import current_service
from agentrt.service.bodylimit import BodyLimit
from agentrt.service.context import Service, ServiceOptions, ServiceSettings
from agentrt.service.headers import SecurityHeaders
from agentrt.service.paths import EncodedSlashes
from agentrt.service.problems import Problem, install_problem_handlers
from agentrt.service.ratelimit import RateLimiter
from agentrt.service.routes import approvals, artifacts, messages, run_events, runs, webhooks
from agentrt.service.worker import RunWorker

__all__ = ["agentrt_lifespan", "create_app"]

logger = get_logger("agentrt.service")


def create_app(runtime: AgentRuntime, **options: Unpack[ServiceOptions]) -> FastAPI:
    """A FastAPI app serving ``runtime``: runs, approvals, traces, events, the review page.

    Callers authenticate with API keys (``agentrt keys create``), each acting as one
    Principal; a key sees only its tenant's runs and approvals. Runs are driven in the
    background on the async runtime, at most ``max_concurrent_runs`` at once, so no request
    waits on a model.

    The options are ServiceSettings' fields, each with its default there:

    - ``rate_limit``: requests per API key, e.g. "600/minute" (429 past it).
    - ``auth_failure_limit``: failed authentications per client address (429 past it, for
      every key from that address until the window moves on); ``login_limit``: sign-in
      form posts per client address. Behind a reverse proxy the address is the proxy's
      unless uvicorn is told to trust its forwarded headers.
    - ``max_streams_per_key``: event streams one key may hold open at once (429 past it).
    - ``max_goal_bytes``: the longest goal a run may be started with, in UTF-8 bytes (422).
    - ``max_body_bytes``: larger request bodies are refused with 413.
    - ``drive_runs``: False serves the API only (``agentrt serve --no-worker``): runs are
      written pending and decisions recorded, and processes running ``agentrt worker``
      on the same database carry them on.
    - ``executor_threads``: size of the event loop's default thread pool, where the run
      graph's nodes run under the async runtime; None leaves the loop's own (``agentrt
      serve`` sets one for its loop).
    - ``sweep_every``: seconds between sweeps that expire (or escalate) overdue approvals;
      None turns the sweep off.
    - ``resume_stopped``: on startup, carry on runs a dead process left running.
    - ``poll_interval``: how often an event stream looks for news (runs can be moved by
      other processes, e.g. a decision from the CLI).
    - ``shutdown_grace``: seconds runs in hand get to finish on shutdown; the rest stop and
      resume from their checkpoints later.

    The app's lifespan does that start-up and shut-down work (carrying on stopped runs, the
    sweep, the grace, and sending the runtime's webhooks from a thread of their own when
    ``AgentRuntime(webhooks=...)`` names endpoints). Starlette runs only the lifespan of the
    app it serves: mounted in your own app, enter ``agentrt_lifespan`` in your app's
    lifespan.
    """
    if not isinstance(runtime, AgentRuntime):
        raise ConfigError(f"create_app serves an agentrt AgentRuntime, got {runtime!r}")
    settings = ServiceSettings(**options)
    service = Service(
        runtime=runtime,
        settings=settings,
        worker=RunWorker(
            runtime, max_concurrent=settings.max_concurrent_runs, enabled=settings.drive_runs
        ),
        rate_limiter=RateLimiter(settings.rate_limit),
        page_polls=RateLimiter(
            settings.rate_limit, over="this API key's open pages have polled over its rate ({rate})"
        ),
        auth_failures=RateLimiter(
            settings.auth_failure_limit,
            setting="auth_failure_limit",
            over="this address has failed to authenticate too often ({rate})",
        ),
        logins=RateLimiter(
            settings.login_limit,
            setting="login_limit",
            over="this address has sent the sign-in form too often ({rate})",
        ),
    )
    app = FastAPI(
        title="agentrt",
        version=__version__,
        summary="Runs of a tool-using agent: start them, follow them, decide their approvals.",
        lifespan=_lifespan,
        # Swagger UI and ReDoc load their scripts from a CDN, and the service runs on closed
        # networks: /openapi.json is served, the pages that need the internet are not.
        docs_url=None,
        redoc_url=None,
    )
    app.state.agentrt = service
    install_problem_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes, refused=ui.answers.too_large)
    app.add_middleware(EncodedSlashes)  # a thread id may hold '/': paths.py
    app.add_middleware(SecurityHeaders)  # outermost: on every answer, refusals included
    app.include_router(runs.router)
    app.include_router(run_events.router)
    app.include_router(messages.router)
    app.include_router(artifacts.router)
    app.include_router(approvals.router)
    app.include_router(webhooks.router)
    ui.install(app)
    app.add_api_route("/healthz", healthz, methods=["GET"], tags=["health"])
    return app


async def healthz(service: Annotated[Service, Depends(current_service)]) -> dict[str, Any]:
    """Liveness and readiness: the database answers. No key needed."""
    try:
        version = await asyncio.to_thread(lambda: service.runtime.schema_version)
    except Exception as exc:
        # Anyone may ask, and a store's error may name its database's URL, password in:
        # the answer names the error's kind only, the server's log says the rest.
        logger.warning("/healthz: the database does not answer", exc_info=exc)
        raise Problem(
            503,
            f"the database does not answer ({type(exc).__name__}); the server's log says why",
            type="unavailable",
        ) from None
    return {"status": "ok", "schema_version": version, "runs_in_hand": service.worker.in_flight}


@asynccontextmanager
async def agentrt_lifespan(app: ASGIApp) -> AsyncIterator[None]:
    """The start-up and shut-down work of the agentrt apps in ``app``, for your own lifespan.

    Starlette runs the lifespan of the app it serves, never those of the apps mounted in
    it; so an app from create_app, mounted, would not carry on stopped runs, sweep its
    approvals or give runs their grace at shutdown. Enter this in your app's lifespan::

        agentrt = create_app(rt)

        @asynccontextmanager
        async def lifespan(app: FastAPI) -> AsyncIterator[None]:
            async with agentrt_lifespan(app):  # your own start-up around it, as you like
                yield

        app = FastAPI(lifespan=lifespan)
        app.mount("/agentrt", agentrt)

    ``app`` is an app create_app made, or an app mounting one or more (found through its
    mounts, at any depth). ConfigError if there is none, or if one is started already.
    """
    found = list(_agentrt_apps(app))
    if not found:
        raise ConfigError(
            f"{app!r} is not an app create_app made and mounts none; pass the app "
            "create_app returned, or the app you mounted it in"
        )
    async with AsyncExitStack() as stack:
        for served in found:
            await stack.enter_async_context(_lifespan(served))
        yield


def _agentrt_apps(app: object) -> Iterator[FastAPI]:
    """The apps create_app made: ``app`` itself, or those mounted in it (each once)."""
    seen: set[int] = set()
    todo = [app]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, FastAPI) and isinstance(
            getattr(current.state, "agentrt", None), Service
        ):
            yield current
            continue
        todo.extend(r.app for r in getattr(current, "routes", ()) if isinstance(r, Mount))


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    service: Service = app.state.agentrt
    if service.started:
        raise ConfigError(
            "this agentrt app's lifespan is running already: the app Starlette serves runs "
            "its own, so enter agentrt_lifespan only for an app that is mounted"
        )
    service.started = True
    settings = service.settings
    sweeper: asyncio.Task[None] | None = None
    # The runtime's webhooks are sent from a thread of their own: a slow receiver never
    # holds up a request, and any number of processes may dispatch the same outbox.
    dispatcher = service.runtime.dispatcher() if service.runtime.webhooks.endpoints else None
    sending = threading.Thread(
        target=dispatcher.run if dispatcher else lambda: None, name="agentrt-webhooks", daemon=True
    )
    try:
        sending.start()
        if settings.executor_threads is not None:
            asyncio.get_running_loop().set_default_executor(
                ThreadPoolExecutor(settings.executor_threads, thread_name_prefix="agentrt")
            )
        if settings.resume_stopped and settings.drive_runs:
            await _resume_stopped(service)
        if settings.sweep_every is not None:
            sweeper = asyncio.create_task(
                _sweep_forever(service, settings.sweep_every), name="agentrt-sweep"
            )
        yield
    finally:
        if sweeper is not None:
            sweeper.cancel()
        if dispatcher is not None:
            dispatcher.stop()
            await asyncio.to_thread(sending.join, 30)
            dispatcher.close()
        await service.worker.close(settings.shutdown_grace)
        service.started = False


async def _resume_stopped(service: Service) -> None:
    """Hand the worker every run a process left mid-way: running, never started, or decided
    at its gate but not carried on. A run another live process drives is left to it (the
    worker meets RunBusy)."""
    for thread_id in await asyncio.to_thread(service.runtime.unfinished_runs):
        service.worker.drive(thread_id)


async def sweep_once(service: Service) -> int:
    """Expire overdue approvals and hand their runs to the worker, and the runs whose wait
    to retry (after a failure that may pass) is over; how many approvals expired."""
    rt = service.runtime
    sweep = await rt.asweep_approvals(resume=False)
    due = await asyncio.to_thread(rt.due_retries) if service.worker.enabled else []
    for thread_id in dict.fromkeys([*(r.thread_id for r in sweep.expired), *due]):
        service.worker.drive(thread_id)
    return len(sweep.expired)


async def _sweep_forever(service: Service, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        try:
            await sweep_once(service)
        except Exception:  # a failed sweep must not end the sweeping
            logger.exception("the approval sweep failed; trying again in %s s", every)
