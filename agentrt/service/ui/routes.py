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
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Depends, FastAPI, Form, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import BaseModel, ValidationError

from agentrt.approvals import ApprovalRequest, shown_args
from agentrt.errors import AgentRuntimeError, ConfigError
from agentrt.runtime import Run
from agentrt.service import auth
from agentrt.service.context import Service
from agentrt.service.problems import Problem, status_of
from agentrt.service.routes.approvals import decision_of
from agentrt.service.schemas import DecisionIn, approval_out
from agentrt.state import TERMINAL, RunStatus
from agentrt.store.keys import ApiKey
from agentrt.tracing.shown import shown_events, shown_run
from agentrt.tracing.view import Trace, format_seconds

__all__ = ["install", "router"]

_HERE = Path(__file__).parent
_STATIC = {"ui.css": "text/css", "ui.js": "text/javascript"}
PAGE_SIZE = 50

templates = Jinja2Templates(
    env=Environment(
        loader=FileSystemLoader(_HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
)

router = APIRouter(prefix="/ui", include_in_schema=False)


class SignInNeeded(Exception):
    """The request has no usable key: the person is sent to the sign-in form."""

    def __init__(self, request: Request, why: str | None = None) -> None:
        super().__init__(why or "sign in")
        # Back to the page asked for; a form post or the run page's poll go to the queue.
        wanted = request.method == "GET" and not request.url.path.endswith("/state")
        self.next = request.url.path if wanted else "/ui"
        self.why = why


class PageError(Exception):
    """A refusal shown as an HTML page (the review page never answers with JSON errors)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


_WHY = {
    "unknown": "That key is unknown or has been revoked. Ask for a new one "
    "(`agentrt keys create`) and sign in with it.",
    "signed-out": "You have signed out.",
}


def install(app: FastAPI) -> None:
    """Add the review page to ``app``: its routes and its HTML answers to refusals."""

    async def on_sign_in(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SignInNeeded)
        query = {"next": exc.next} | ({"why": exc.why} if exc.why else {})
        response = RedirectResponse(f"/ui/login?{urlencode(query)}", status_code=303)
        if exc.why:  # a key that no longer works is forgotten
            response.delete_cookie(auth.COOKIE, path="/ui")
        return response

    async def on_page_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PageError)
        return _page(
            request,
            "error.html",
            {"status": exc.status, "message": exc.message},
            status=exc.status,
            headers=exc.headers,
        )

    app.add_exception_handler(SignInNeeded, on_sign_in)
    app.add_exception_handler(PageError, on_page_error)
    app.include_router(router)


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
ServiceDep = Annotated[Service, Depends(auth.service_of)]
SameOrigin = Depends(_same_origin)


# sign-in ------------------------------------------------------------------------------------


@router.get("/login", response_class=HTMLResponse)
async def login_form(
    request: Request, next: str = "/ui", why: Annotated[str | None, Query()] = None
) -> Response:
    return _page(request, "login.html", {"next": _local(next), "notice": _WHY.get(why or "")})


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
        return _page(request, "login.html", {"next": _local(next), "error": message}, status=401)
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
    try:
        page = await asyncio.to_thread(
            rt.approvals, "pending", tenant=key.principal.tenant, limit=PAGE_SIZE, cursor=cursor
        )
    except (ConfigError, ValueError):
        raise PageError(400, f"{cursor!r} is not a page of this queue; start at /ui") from None
    return _page(
        request,
        "queue.html",
        {
            "key": key,
            "approvals": [approval_out(rt, r) for r in page],
            "next_cursor": page.next_cursor,
            "cursor": cursor,
            "refusal": refusal,
            "back": "/ui",
        },
        status=refusal.status if refusal else 200,
    )


@router.get("/runs", response_class=HTMLResponse)
async def runs(
    request: Request, key: Caller, service: ServiceDep, status: str | None = None
) -> Response:
    try:
        found = await asyncio.to_thread(
            service.runtime.runs, status or None, tenant=key.principal.tenant, limit=200
        )
    except (ConfigError, ValueError):
        raise PageError(400, f"{status!r} is not a run status; use one of {_STATUSES}") from None
    return _page(
        request,
        "runs.html",
        {
            "key": key,
            "runs": [shown_run(r, service.runtime.redactor) for r in found],
            "status": status,
            "statuses": _STATUSES,
        },
    )


_STATUSES = [s.value for s in RunStatus]


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
    try:
        trace: Trace | None = await asyncio.to_thread(rt.trace, thread_id)
    except ConfigError:
        trace = None
    return _page(
        request,
        "run.html",
        {
            "key": key,
            "run": shown_run(run, rt.redactor),
            "terminal": run.status in TERMINAL,
            "version": _version(run),
            "driving": service.worker.driving(thread_id),
            "approvals": [approval_out(rt, r) for r in run.pending_approvals],
            "steps": [_step(i, e) for i, e in enumerate(shown_log)],
            "trace": trace,
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


# deciding ----------------------------------------------------------------------------------


class DecisionForm(BaseModel):
    """A decide form as the browser posts it (checked by DecisionIn after)."""

    outcome: str
    reason: str = ""
    args: str = ""
    """For edit: the arguments as JSON text."""
    result: str = ""
    """For resolve: what the tool returned, as JSON text."""
    to: str = ""
    """For raise_limit: the limit's new value."""
    args_digest: str = ""
    """For approve: the digest of the arguments the person saw."""
    back: str = "/ui"
    """The page the form is on, where the answer goes."""


@router.post("/approvals/{approval_id}/decision", dependencies=[SameOrigin])
async def decide(
    request: Request,
    approval_id: str,
    key: Caller,
    service: ServiceDep,
    posted: Annotated[DecisionForm, Form()],
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
    except _Refused as refused:
        refusal = Refusal(approval_id, refused.message, refused.status, form)
        if back.startswith("/ui/runs/"):
            return await _run_page(request, key, service, request_.thread_id, refusal)
        return await _queue(request, key, service, None, refusal)
    done = urlencode({"decided": approval_id, "outcome": posted.outcome, "run": run.thread_id})
    return RedirectResponse(f"{back}?{done}", status_code=303)


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


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
        edited = _json_field(form["args"], "the edited arguments are", '{"amount": 40}')
        if not isinstance(edited, dict):
            raise _Refused(
                422, f"the edited arguments must be a JSON object, got {form['args'].strip()!r}"
            )
        # The person saw masked values; a field left as shown keeps what the run had.
        rt = service.runtime
        seen = shown_args(request, rt.tools, redactor=rt.redactor)
        body["args"] = _unmasked(edited, request.args, seen)
    elif form["outcome"] == "resolve":
        body["result"] = _json_field(form["result"], "the result is", '{"sent": true}')
    elif form["outcome"] == "raise_limit":
        body["to"] = _number(form["to"])
    try:
        parsed = DecisionIn.model_validate(body)
        decision = decision_of(request, parsed, key.principal)
        run = await service.runtime.adecide(decision, resume=False)
    except ValidationError as exc:
        raise _Refused(422, "; ".join(_plain(e) for e in exc.errors())) from None
    except Problem as exc:
        raise _Refused(exc.status, exc.detail) from None
    except AgentRuntimeError as exc:
        raise _Refused(status_of(exc)[0], str(exc)) from None
    service.worker.drive(run.thread_id)
    return run


def _json_field(text: str, what_is: str, example: str) -> Any:
    """JSON typed into a form; ``what_is`` names it for the refusal ("the result is")."""
    if not text.strip():
        raise _Refused(422, f"{what_is} empty; write it as JSON, e.g. {example}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise _Refused(
            422,
            f"{what_is} not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); "
            f"write it as JSON, e.g. {example}",
        ) from None


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise _Refused(422, f"the new limit must be a number, got {text.strip()!r}")
    return value


def _plain(error: Any) -> str:
    where = ".".join(str(p) for p in error["loc"])
    return f"{where}: {error['msg']}" if where else str(error["msg"])


def _unmasked(edited: Any, original: Any, seen: Any) -> Any:
    """The edit as meant: a value left exactly as it was shown (masked, or with a secret cut
    out of its text) is the run's own value, and a field the view dropped stays."""
    if edited == seen:
        return original
    if isinstance(edited, dict) and isinstance(original, dict) and isinstance(seen, dict):
        out = {
            k: _unmasked(v, original[k], seen.get(k)) if k in original else v
            for k, v in edited.items()
        }
        return out | {k: v for k, v in original.items() if k not in seen and k not in out}
    lists = all(isinstance(x, list) for x in (edited, original, seen))
    if lists and len(edited) == len(original) == len(seen):
        return [_unmasked(*parts) for parts in zip(edited, original, seen, strict=True)]
    return edited


# what the templates get ----------------------------------------------------------------------


async def _tenant_run(service: Service, key: ApiKey, thread_id: str) -> Run:
    try:
        return await service.run_for(key.principal, thread_id)
    except Problem as exc:
        raise PageError(
            exc.status, f"No run {thread_id!r} in your tenant. The runs page lists yours."
        ) from None


def _step(index: int, event: dict[str, Any]) -> dict[str, Any]:
    """One entry of the event log, with a line that says what happened."""
    data: dict[str, Any] = event.get("data", {})
    kind = event["type"]
    if kind == "plan":
        calls = ", ".join(f"{a['tool']}({_args(a.get('args'))})" for a in data.get("actions", []))
        line = " ".join(x for x in (str(data.get("content") or ""), calls and f"→ {calls}") if x)
    elif kind == "policy":
        line = f"{data.get('outcome')} by rule {data.get('rule_id')!s}: {data.get('reason', '')}"
    elif kind == "approval":
        line = f"{data.get('tool')}: {data.get('status')}"
        if data.get("decided_by"):
            line += f" by {data['decided_by']}"
    elif kind == "observation":
        line = f"{data.get('tool')} {data.get('kind')}: {data.get('content', '')}"
    elif kind == "finish":
        line = str(data.get("status")) + (f": {data['error']}" if data.get("error") else "")
    else:
        line = ""
    return {
        "index": index,
        "type": kind,
        "step_id": event.get("step_id", ""),
        "line": line,
        "json": json.dumps(data, indent=2, default=str, ensure_ascii=False),
    }


def _args(args: Any) -> str:
    if not isinstance(args, dict):
        return json.dumps(args, default=str)
    return ", ".join(f"{k}={json.dumps(v, default=str)}" for k, v in args.items())


def _page(
    request: Request,
    name: str,
    context: dict[str, Any],
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    now = auth.service_of(request).runtime.clock()
    return templates.TemplateResponse(
        request,
        name,
        {"now": now, "query": request.query_params, **context},
        status_code=status,
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def _when(epoch: float | None) -> str:
    if epoch is None:
        return ""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _ago(seconds: float) -> str:
    """A span of time as a person reads it: 45s, 12m, 5h 20m, 2d 23h."""
    whole = int(max(0.0, seconds))
    days, hours, minutes = whole // 86400, whole % 86400 // 3600, whole % 3600 // 60
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    return f"{minutes}m" if minutes else f"{whole}s"


def _spent(value: Any, name: str) -> str:
    """One field of a run's usage or budget, in its unit."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if name == "deadline":
            return _when(value)
        if name.endswith("seconds"):
            return format_seconds(float(value))
        if name.endswith("usd"):
            return f"${value:.4f}".rstrip("0").rstrip(".") if value else "$0"
    return str(value)


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, default=str, ensure_ascii=False)


templates.env.filters.update(
    when=_when, ago=_ago, secs=format_seconds, pretty=_pretty, spent=_spent
)
