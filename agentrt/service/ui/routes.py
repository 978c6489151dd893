"""The review page's routes: sign-in, the approval queue, runs (deciding from a form is
``deciding.py``'s, which draws its answers with ``queue_view`` and ``run_view``).

Every page authenticates with the API key a person typed into the sign-in form, kept in
an HttpOnly, SameSite=Strict cookie scoped to /ui.

Cross-site requests: the cookie is SameSite=Strict, so a browser does not send it with a
request another site starts; on top of that every POST must carry an Origin (or, failing
that, a Referer) naming this server's own host, or it is refused with 403.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response

from agentrt.approvals.queue import queue_page
from agentrt.errors import ConfigError
from agentrt.records import ApiKey
from agentrt.runtime import Run
from agentrt.service import auth
from agentrt.service.context import Service, picks_tenant, tenant_listed
from agentrt.service.paths import RUN, quoted
from agentrt.service.problems import Problem
from agentrt.service.routes.artifacts import artifacts_out
from agentrt.service.schemas import approval_out, message_out
from agentrt.service.ui import review, views
from agentrt.service.ui.answers import PageError, SignInNeeded
from agentrt.service.ui.waterfall import waterfall
from agentrt.state import TERMINAL, RunStatus
from agentrt.tracing.shown import log_secrets, shown_events, shown_run
from agentrt.tracing.view import Trace

__all__ = ["Caller", "PageError", "Poller", "ServiceDep", "router"]

_HERE = Path(__file__).parent
_STATIC = {"ui.css": "text/css", "ui.js": "text/javascript"}
PAGE_SIZE = 50
_SUPERSEDED_SHOWN = 200
"""A run page's superseded requests shown at most, oldest first (one a message, at most)."""

router = APIRouter(prefix="/ui", include_in_schema=False)

_T = TypeVar("_T")


_WHY = {
    "unknown": "That key is unknown or has been revoked. Ask for a new one "
    "(`agentrt keys create`) and sign in with it.",
    "signed-out": "You have signed out.",
}


# who is asking -----------------------------------------------------------------------------


async def _signed_in(request: Request) -> ApiKey:
    return await _signed_in_as(request, polling=False)


async def _polling(request: Request) -> ApiKey:
    """``Caller`` for what the page's script asks by itself (``auth.authenticate``)."""
    return await _signed_in_as(request, polling=True)


async def _signed_in_as(request: Request, *, polling: bool) -> ApiKey:
    key = auth.key_from_request(request, cookie=True)
    if not key:
        raise SignInNeeded(request)
    try:
        return await auth.authenticate(request, key, polling=polling)
    except Problem as exc:
        if exc.status == 401:
            raise SignInNeeded(request, "unknown") from None
        raise PageError(exc.status, exc.detail, exc.headers) from None


def _same_origin(request: Request) -> None:
    """Refuse a form post that another site started (see the module's docstring)."""
    source = request.headers.get("origin") or request.headers.get("referer")
    host = request.headers.get("host", request.url.netloc)
    if not source or urlsplit(source).netloc != host:
        raise PageError(
            403,
            f"this form was not sent from this server's own page (origin {source!r}, expected "
            f"{host!r}); open the review page at /ui and submit it from there",
        )


Caller = Annotated[ApiKey, Depends(_signed_in)]
Poller = Annotated[ApiKey, Depends(_polling)]
ServiceDep = Annotated[Service, Depends(auth.current_service)]
SameOrigin = Depends(_same_origin)


# sign-in ------------------------------------------------------------------------------------


@router.get("/login", response_class=HTMLResponse)
async def login_form(
    request: Request, next: str = "/ui", why: Annotated[str | None, Query()] = None
) -> Response:
    return views.page(request, "login.html", {"next": local(next), "notice": _WHY.get(why or "")})


@router.post("/login", dependencies=[SameOrigin])
async def login(
    request: Request, key: Annotated[str, Form()] = "", next: Annotated[str, Form()] = "/ui"
) -> Response:
    key = key.strip()
    try:
        auth.service_of(request).logins.hit(auth.client_address(request))
        await auth.authenticate(request, key)
    except Problem as exc:
        if exc.status != 401:
            raise PageError(exc.status, exc.detail, exc.headers) from None
        message = "Paste your API key." if not key else _WHY["unknown"]
        return views.page(
            request, "login.html", {"next": local(next), "error": message}, status=401
        )
    response = RedirectResponse(local(next), status_code=303)
    response.set_cookie(
        auth.COOKIE,
        key,
        path="/ui",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.post("/logout", dependencies=[SameOrigin])
async def logout() -> Response:
    response = RedirectResponse("/ui/login?why=signed-out", status_code=303)
    response.delete_cookie(auth.COOKIE, path="/ui")
    return response


def local(target: str) -> str:
    """Only a path of the review page itself is a place to go after signing in."""
    own = target == "/ui" or target.startswith(("/ui/", "/ui?"))
    return target if own and "//" not in target and "\\" not in target else "/ui"


# pages -------------------------------------------------------------------------------------


@dataclass
class Refusal:
    """A decision the runtime refused: its message, and the form as the person filled it."""

    approval_id: str
    message: str
    status: int
    form: dict[str, str] = field(default_factory=dict)


@router.get("", response_class=HTMLResponse)
async def queue(
    request: Request, key: Caller, service: ServiceDep, cursor: str | None = None
) -> Response:
    return await queue_view(request, key, service, cursor)


async def queue_view(
    request: Request,
    key: ApiKey,
    service: Service,
    cursor: str | None,
    refusal: Refusal | None = None,
    *,
    params: Mapping[str, str] | None = None,
) -> Response:
    """The queue page, narrowed by the filters in ``params`` (the request's query if not
    given: a refused decision passes those of the page it was made on)."""
    rt = service.runtime
    filters = review.queue_filters(key, request.query_params if params is None else params)
    page = await _listed(
        partial(
            queue_page,
            rt.store,
            "pending",
            tenant=review.tenant_of(key, filters),
            role=None,
            thread_id=None,
            limit=PAGE_SIZE,
            cursor=cursor,
            tool=filters.tool,
            rule_id=filters.rule,
            requested_before=filters.requested_before(rt.clock()),
        ),
        f"{cursor!r} is not a page of this queue; start at /ui",
    )
    asking = dict.fromkeys(r.thread_id for r in page)
    waiting = {t: await _tenant_run(service, key, t) for t in asking}
    known = await _known(service, waiting.values())
    goals = {t: shown_run(run, rt.redactor, known=known[t]).goal for t, run in waiting.items()}
    return views.page(
        request,
        "queue.html",
        {
            "key": key,
            "approvals": [approval_out(rt, r, known[r.thread_id]) for r in page],
            "goals": goals,
            "next_cursor": page.next_cursor,
            "cursor": cursor,
            "refusal": refusal,
            # A decision made here comes back to this queue, its filters kept (README).
            "back": f"/ui?{urlencode(filters.query())}" if filters.active else "/ui",
            "filters": filters,
            "pick_tenant": picks_tenant(key.principal),
            "choices": review.filter_choices(rt),
        },
        status=refusal.status if refusal else 200,
    )


async def _known(service: Service, runs: Iterable[Run]) -> dict[str, list[Any]]:
    """The secret values each run's log holds, by thread id: a listed run's goal is masked
    with them as its own page masks it (kept per state of its row, so a list drawn again
    reads no log that cannot have grown: ``service.secrets``)."""
    listed = list(runs)
    known = await asyncio.to_thread(lambda: [service.secrets.known(r) for r in listed])
    return {r.thread_id: k for r, k in zip(listed, known, strict=True)}


@router.get("/runs", response_class=HTMLResponse)
async def runs(
    request: Request, key: Caller, service: ServiceDep, status: str | None = None
) -> Response:
    found = await _listed(
        partial(
            service.runtime.runs, status or None, tenant=tenant_listed(key.principal), limit=200
        ),
        f"{status!r} is not a run status; use one of {_STATUSES}",
    )
    known = await _known(service, found)
    redactor = service.runtime.redactor
    return views.page(
        request,
        "runs.html",
        {
            "key": key,
            "runs": [shown_run(r, redactor, known=known[r.thread_id]) for r in found],
            "status": status,
            "statuses": _STATUSES,
        },
    )


_STATUSES = [s.value for s in RunStatus]


async def _listed(fetch: Callable[[], _T], refused: str) -> _T:
    """A page of a list (the queue, the runs), fetched off the event loop; a filter the
    runtime refuses (a cursor of no page, an unknown status) is a 400 page saying
    ``refused``."""
    try:
        return await asyncio.to_thread(fetch)
    except (ConfigError, ValueError):
        raise PageError(400, refused) from None


@router.get(RUN, response_class=HTMLResponse)
async def run_page(request: Request, thread_id: str, key: Caller, service: ServiceDep) -> Response:
    return await run_view(request, key, service, thread_id)


async def run_view(
    request: Request,
    key: ApiKey,
    service: Service,
    thread_id: str,
    refusal: Refusal | None = None,
) -> Response:
    run = await _tenant_run(service, key, thread_id)
    rt = service.runtime
    log = await asyncio.to_thread(rt.events, thread_id)
    shown_log = await asyncio.to_thread(shown_events, log, rt.redactor, rt.tools.sensitive_of)
    # The run's output and messages are masked with the secret values its log holds, as
    # its steps are: an answer may repeat a sensitive argument.
    known = await asyncio.to_thread(log_secrets, log, rt.redactor, rt.tools.sensitive_of)
    shown_as = shown_run(run, rt.redactor, known=known)
    try:
        trace: Trace | None = await asyncio.to_thread(rt.trace, thread_id)
    except ConfigError:
        trace = None
    said = await asyncio.to_thread(rt.messages, thread_id)
    shown = [approval_out(rt, r, known) for r in run.pending_approvals]
    # A request a later message superseded never ran, so its log tells nothing of it: it
    # is shown here, where a notification's link about it lands (#approval-<id>).
    cancelled = await asyncio.to_thread(
        rt.approvals, "cancelled", thread_id=thread_id, limit=_SUPERSEDED_SHOWN
    )
    superseded = [approval_out(rt, r, known) for r in cancelled if r.superseded]
    contexts = await asyncio.to_thread(
        review.contexts_of, rt, shown_as, shown, shown_log, policy=rt.policy
    )
    return views.page(
        request,
        "run.html",
        {
            "key": key,
            "messages": [message_out(rt, m, known) for m in said],
            "run": shown_as,
            "terminal": run.status in TERMINAL,
            "version": _version(run),
            "driving": service.worker.driving(thread_id),
            "approvals": shown,
            "superseded": superseded,
            "contexts": contexts,
            "steps": [views.step(i, e) for i, e in enumerate(shown_log)],
            "artifacts": await asyncio.to_thread(artifacts_out, rt, thread_id),
            "trace": trace,
            "waterfall": waterfall(trace) if trace else None,
            "time_went": trace.time_went() if trace else {},
            "refusal": refusal,
            "back": f"/ui/runs/{quoted(thread_id)}",
        },
        status=refusal.status if refusal else 200,
    )


@router.get(f"{RUN}/state")
async def run_state(thread_id: str, key: Poller, service: ServiceDep) -> JSONResponse:
    """What the run page's script polls: it reloads the page when this changes."""
    run = await _tenant_run(service, key, thread_id)
    return JSONResponse(
        {"status": run.status.value, "version": _version(run), "terminal": run.status in TERMINAL}
    )


def _version(run: Run) -> str:
    """Changes whenever the run moves (the page compares it with the one it was drawn at)."""
    return f"{run.status.value}|{run.updated_at!r}|{len(run.pending_approvals)}"


@router.get("/static/{name}")
async def static(name: str) -> FileResponse:
    if name not in _STATIC:
        raise PageError(404, f"no file {name!r} here")
    return FileResponse(_HERE / "static" / name, media_type=_STATIC[name])


# a notification's link -----------------------------------------------------------------------


@router.get("/approvals/{approval_id}", response_class=HTMLResponse)
async def approval_link(
    request: Request, approval_id: str, service: ServiceDep, hop: int = 0
) -> Response:
    """Where a notification's link lands: the request on its run's page, for a signed-in
    person of its tenant. No decision is taken here; the page's forms decide, with every
    check decide applies.

    The sign-in cookie is SameSite=Strict, so a browser opening the link from a mail or a
    chat (another site) leaves it out: the first answer sends the browser to this same
    address again from this site, which then carries the cookie.
    """
    if hop == 0 and auth.key_from_request(request, cookie=True) is None:
        return views.page(request, "hop.html", {"target": f"{request.url.path}?hop=1"})
    key = await _signed_in(request)
    try:
        found = await service.approval_for(key.principal, approval_id)
    except Problem:
        raise PageError(
            404, f"No approval request {approval_id!r} in your tenant. The queue lists yours."
        ) from None
    return RedirectResponse(
        f"/ui/runs/{quoted(found.thread_id)}#approval-{found.id}", status_code=303
    )


# a run, as the signed-in person may see it ---------------------------------------------------


async def _tenant_run(service: Service, key: ApiKey, thread_id: str) -> Run:
    try:
        return await service.run_for(key.principal, thread_id)
    except Problem as exc:
        raise PageError(
            exc.status, f"No run {thread_id!r} in your tenant. The runs page lists yours."
        ) from None
