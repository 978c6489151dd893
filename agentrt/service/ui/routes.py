"""The review page's routes: sign-in, the approval queue, runs, and deciding from a form.

Every page authenticates with the API key a person typed into the sign-in form, kept in
an HttpOnly, SameSite=Strict cookie scoped to /ui. Decisions take the API's own path
(decision_of, then ``adecide(resume=False)``, then the background worker), so the runtime
checks a click exactly as it checks an API call. A refused decision shows its message on
the page it came from, with what the person typed still in the form.

Cross-site requests: the cookie is SameSite=Strict, so a browser does not send it with a
request another site starts; on top of that every POST must carry an Origin (or, failing
that, a Referer) naming this server's own host, or it is refused with 403.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import ValidationError

from agentrt.approvals import ApprovalRequest
from agentrt.approvals.display import shown_about
from agentrt.approvals.queue import queue_page
from agentrt.errors import AgentRuntimeError, ConfigError
from agentrt.records import ApiKey
from agentrt.runtime import Run
from agentrt.service import auth
from agentrt.service.context import Service
from agentrt.service.problems import Problem, status_of
from agentrt.service.routes.approvals import decision_of
from agentrt.service.routes.artifacts import artifacts_out
from agentrt.service.schemas import DecisionIn, approval_out, message_out
from agentrt.service.ui import review, views
from agentrt.service.ui.answers import PageError, SignInNeeded
from agentrt.service.ui.forms import DecisionForm, Refused, json_field, number, plain
from agentrt.service.ui.waterfall import waterfall
from agentrt.state import TERMINAL, RunStatus
from agentrt.tracing.shown import log_secrets, shown_events, shown_run
from agentrt.tracing.view import Trace

__all__ = ["Caller", "PageError", "ServiceDep", "router"]

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
    key = auth.key_from_request(request, cookie=True)
    if not key:
        raise SignInNeeded(request)
    try:
        return await auth.authenticate(request, key)
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
ServiceDep = Annotated[Service, Depends(auth.current_service)]
SameOrigin = Depends(_same_origin)


# sign-in ------------------------------------------------------------------------------------


@router.get("/login", response_class=HTMLResponse)
async def login_form(
    request: Request, next: str = "/ui", why: Annotated[str | None, Query()] = None
) -> Response:
    return views.page(request, "login.html", {"next": _local(next), "notice": _WHY.get(why or "")})


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
            request, "login.html", {"next": _local(next), "error": message}, status=401
        )
    response = RedirectResponse(_local(next), status_code=303)
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


def _local(target: str) -> str:
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
    return await _queue(request, key, service, cursor)


async def _queue(
    request: Request,
    key: ApiKey,
    service: Service,
    cursor: str | None,
    refusal: Refusal | None = None,
) -> Response:
    rt = service.runtime
    filters = review.queue_filters(key, request.query_params)
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
            "back": "/ui",
            "filters": filters,
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
        partial(service.runtime.runs, status or None, tenant=key.principal.tenant, limit=200),
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


@router.get("/runs/{thread_id}", response_class=HTMLResponse)
async def run_page(request: Request, thread_id: str, key: Caller, service: ServiceDep) -> Response:
    return await _run_page(request, key, service, thread_id)


async def _run_page(
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
            "back": f"/ui/runs/{thread_id}",
        },
        status=refusal.status if refusal else 200,
    )


@router.get("/runs/{thread_id}/state")
async def run_state(thread_id: str, key: Caller, service: ServiceDep) -> JSONResponse:
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
    return RedirectResponse(f"/ui/runs/{found.thread_id}#approval-{found.id}", status_code=303)


# deciding ----------------------------------------------------------------------------------


async def _decision_form(request: Request) -> DecisionForm:
    """The decide form as posted. One the page's own forms would not send (a field left
    out) is refused on a page, as every refusal here: a Form() model answers with JSON."""
    posted = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    try:
        return DecisionForm.model_validate(posted)
    except ValidationError as exc:
        problems = "; ".join(plain(e) for e in exc.errors())
        raise PageError(
            422,
            f"this decision form is incomplete ({problems}); reload the page and decide "
            "with the buttons of its request",
        ) from None


@router.post("/approvals/{approval_id}/decision", dependencies=[SameOrigin])
async def decide(
    request: Request,
    approval_id: str,
    key: Caller,
    service: ServiceDep,
    posted: Annotated[DecisionForm, Depends(_decision_form)],
) -> Response:
    """Decide as the signed-in person; back to the page it came from either way."""
    back = _local(posted.back)
    form = posted.model_dump(exclude={"args_digest", "back"})
    try:
        request_ = await service.approval_for(key.principal, approval_id)
    except Problem as exc:
        raise PageError(exc.status, exc.detail) from None
    try:
        run = await _decide(service, key, request_, form, posted.args_digest)
    except Refused as refused:
        # A message may quote the arguments, real values in (an edit's are unmasked
        # before they are checked): shown as everything else on the page is.
        rt = service.runtime
        message = shown_about(
            request_, rt.tools, refused.message, args=form["args"], redactor=rt.redactor
        )
        refusal = Refusal(approval_id, message, refused.status, form)
        if back.startswith("/ui/runs/"):
            return await _run_page(request, key, service, request_.thread_id, refusal)
        return await _queue(request, key, service, None, refusal)
    done = urlencode({"decided": approval_id, "outcome": posted.outcome, "run": run.thread_id})
    return RedirectResponse(f"{back}?{done}", status_code=303)


async def _decide(
    service: Service,
    key: ApiKey,
    request: ApprovalRequest,
    form: dict[str, str],
    args_digest: str,
) -> Run:
    # Only what the form filled in, as an API client would send it.
    body: dict[str, Any] = {"outcome": form["outcome"]}
    if args_digest:
        body["args_digest"] = args_digest
    if form["reason"].strip():
        body["reason"] = form["reason"].strip()
    if form["outcome"] == "edit":
        edited = json_field(form["args"], "the edited arguments are", '{"amount": 40}')
        if not isinstance(edited, dict):
            raise Refused(
                422, f"the edited arguments must be a JSON object, got {form['args'].strip()!r}"
            )
        # As shown, masked: a field left so keeps what the run had (runs/decisions.py).
        body["args"] = edited
    elif form["outcome"] == "resolve":
        body["result"] = json_field(form["result"], "the result is", '{"sent": true}')
    elif form["outcome"] == "raise_limit":
        body["to"] = number(form["to"])
    try:
        parsed = DecisionIn.model_validate(body)
        decision = decision_of(request, parsed, key.principal)
        run = await service.runtime.adecide(decision, resume=False)
    except ValidationError as exc:
        raise Refused(422, "; ".join(plain(e) for e in exc.errors())) from None
    except Problem as exc:
        raise Refused(exc.status, exc.detail) from None
    except AgentRuntimeError as exc:
        raise Refused(status_of(exc)[0], str(exc)) from None
    service.worker.drive(run.thread_id)
    return run


# a run, as the signed-in person may see it ---------------------------------------------------


async def _tenant_run(service: Service, key: ApiKey, thread_id: str) -> Run:
    try:
        return await service.run_for(key.principal, thread_id)
    except Problem as exc:
        raise PageError(
            exc.status, f"No run {thread_id!r} in your tenant. The runs page lists yours."
        ) from None
