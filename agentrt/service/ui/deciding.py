"""Deciding from the review page's forms: a decide form read, then the API's own path
(decision_of, then ``adecide(resume=False)``, then the background worker), so the runtime
checks a click exactly as it checks an API call. A refused decision shows its message on
the page it came from, with what the person typed still in the form; a decision made goes
back to that page (a filtered queue keeps its filters).
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from agentrt.approvals import ApprovalRequest
from agentrt.approvals.display import shown_about
from agentrt.errors import AgentRuntimeError
from agentrt.records import ApiKey
from agentrt.runtime import Run
from agentrt.service.context import Service
from agentrt.service.problems import Problem, status_of
from agentrt.service.routes.approvals import decision_of
from agentrt.service.schemas import DecisionIn
from agentrt.service.ui.answers import PageError
from agentrt.service.ui.forms import DecisionForm, Refused, json_field, number, plain
from agentrt.service.ui.routes import (
    Caller,
    Refusal,
    SameOrigin,
    ServiceDep,
    local,
    queue_view,
    run_view,
)

__all__ = ["router"]

router = APIRouter(prefix="/ui", include_in_schema=False)

_NOTICE = frozenset({"decided", "outcome", "run"})
"""The query fields a decision's answer sets, for the page to say what was decided."""


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
    # The page's own query (a queue's filters) is kept; the last decision's notice is not.
    path, _, query = local(posted.back).partition("?")
    kept = [(k, v) for k, v in parse_qsl(query) if k not in _NOTICE]
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
        if path.startswith("/ui/runs/"):
            return await run_view(request, key, service, request_.thread_id, refusal)
        return await queue_view(request, key, service, None, refusal, params=dict(kept))
    done = {"decided": approval_id, "outcome": posted.outcome, "run": run.thread_id}
    return RedirectResponse(f"{path}?{urlencode([*kept, *done.items()])}", status_code=303)


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
