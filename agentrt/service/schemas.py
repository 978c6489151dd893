"""What the HTTP API takes and gives, as pydantic models (and so in /openapi.json)."""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agentrt.approvals import ApprovalRequest
from agentrt.approvals.display import changed_args, shown_args, shown_request
from agentrt.budget import MAX_LIMIT
from agentrt.readable import LAST_INSTANT
from agentrt.runs.messages import ThreadMessage
from agentrt.runtime import AgentRuntime, Run
from agentrt.tracing.shown import shown, shown_run

__all__ = [
    "MAX_DEPTH",
    "ApprovalList",
    "ApprovalOut",
    "BudgetIn",
    "DecisionIn",
    "DecisionOut",
    "MessageIn",
    "MessageList",
    "MessageOut",
    "RunIn",
    "RunList",
    "RunOut",
    "approval_out",
    "message_out",
    "run_out",
]


MAX_DEPTH = 64
"""How deep the arrays and objects of a request body may nest (the body itself is the
first level): a small body nested hundreds deep is refused with a 422 naming this."""


class _In(BaseModel):
    # A misspelt field is a 422 that names it, never a silently ignored option.
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _finite(cls, data: Any) -> Any:
        # Python's JSON parser takes NaN and Infinity, which are not JSON; anywhere in a
        # body (free-form arguments and results too) they are refused, not stored. So is
        # a value nested past MAX_DEPTH, which every walk over it would recurse into.
        problem = _unacceptable(data)
        if problem is not None:
            raise ValueError(problem)
        return data


class BudgetIn(_In):
    """Limits for one run, layered over the runtime's and the tenant's (None inherits)."""

    # A count past 64 bits could not be stored with the run: refused here, not later.
    # Strict, as Budget is: true is no count and "5" no number (lax, they were 1 and 5).
    max_tokens: int | None = Field(None, ge=0, le=MAX_LIMIT, strict=True)
    max_cost_usd: float | None = Field(None, ge=0, strict=True)
    max_tool_calls: int | None = Field(None, ge=0, le=MAX_LIMIT, strict=True)
    max_steps: int | None = Field(None, ge=0, le=MAX_LIMIT, strict=True)
    max_active_seconds: float | None = Field(None, ge=0, strict=True)
    deadline: float | None = Field(
        None,
        ge=0,
        le=LAST_INSTANT,
        strict=True,
        description="Epoch seconds, at most 253402300799 (9999-12-31T23:59:59Z).",
    )
    on_exceed: Literal["stop", "ask"] | None = None
    approver_role: str | None = None


class RunIn(_In):
    """A run to start, acting for the caller's principal."""

    goal: str = Field(
        min_length=1,
        description="What the run should do; at most the service's max_goal_bytes "
        "(64 KiB unless the server says otherwise) in UTF-8.",
    )
    budget: BudgetIn | None = None
    thread_id: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        pattern=r"^[A-Za-z0-9._:-]+$",
        description="An id of your own (must be new); omitted: a new one.",
    )


class MessageIn(_In):
    """A follow-up on a thread, sent as the caller's principal."""

    message: str = Field(
        min_length=1,
        description="What the person says next; at most the service's max_goal_bytes in UTF-8.",
    )
    budget: BudgetIn | None = Field(
        None, description="Limits on this message alone; the thread's still bind across all."
    )
    double_texting: Literal["reject", "enqueue", "interrupt"] | None = Field(
        None,
        description="If the thread is still at work or waits at a gate: reject (409), "
        "enqueue (answered after the current message), or interrupt (the current one stops "
        "at its next safe point). Omitted: the runtime's policy.",
    )


class DecisionIn(_In):
    """A person's decision, made as the caller's principal."""

    outcome: Literal["approve", "reject", "edit", "resolve", "retry", "raise_limit"]
    reason: str | None = Field(None, max_length=5_000, description="Required for reject.")
    args: dict[str, Any] | None = Field(None, description="For edit: the arguments to run.")
    result: Any = Field(None, description="For resolve: the result the effect had.")
    to: float | None = Field(
        None, strict=True, description="For raise_limit: the limit's new value."
    )
    args_digest: str | None = Field(
        None, description="If set, the decision applies only to exactly these arguments."
    )


class ApprovalOut(BaseModel):
    id: str
    thread_id: str
    step_id: str
    kind: str
    status: str
    tool: str
    args: Any = Field(description="The arguments, with the tool's sensitive fields masked.")
    args_digest: str
    edited_args: Any = None
    changed_args: list[str] | None = Field(
        None,
        description="For an edit: the arguments it changed, compared on their real values "
        "(a sensitive one is named though args and edited_args both show it masked).",
    )
    edited_from: str | None = Field(
        None, description="The request whose edit made this one; its changed_args say what."
    )
    edited_by: str | None = None
    rule_id: str | None
    reason: str
    required_role: str | None
    four_eyes: bool
    requested_by: str
    tenant: str | None
    requested_at: float
    expires_at: float | None
    decided_by: str | None
    decided_at: float | None
    comment: str | None
    waited_seconds: float | None
    escalated_from: str | None
    escalated_to: str | None
    superseded: str | None = Field(
        None,
        description="Why a later message of the thread cancelled the request before its "
        'action ran ("superseded by message #2"); a decision given before keeps its '
        "decided_by, decided_at and comment.",
    )


class RunOut(BaseModel):
    thread_id: str
    status: str
    goal: str
    principal: dict[str, Any]
    output: str | None
    error: str | None
    usage: dict[str, Any]
    budget: dict[str, Any]
    budget_report: dict[str, Any] | None
    pending_approvals: list[ApprovalOut]
    created_at: float
    updated_at: float
    message: int = Field(0, description="The thread's current message: 0 its goal, then 1, 2...")
    driving: bool = Field(description="True while this server drives the run in the background.")


class MessageOut(BaseModel):
    """One message of a thread: its goal (index 0) or a follow-up."""

    thread_id: str
    index: int
    text: str
    principal: dict[str, Any]
    status: str = Field(
        description="queued; the run's status while it is answered; then how it ended (a "
        "terminal status, or interrupted)."
    )
    output: str | None
    error: str | None
    usage: dict[str, Any] = Field(description="What answering it spent.")
    budget: dict[str, Any] | None
    interrupt: bool
    created_at: float
    started_at: float | None
    ended_at: float | None


class MessageList(BaseModel):
    messages: list[MessageOut]


class RunList(BaseModel):
    runs: list[RunOut]


class ApprovalList(BaseModel):
    approvals: list[ApprovalOut]
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page.")


class DecisionOut(BaseModel):
    approval: ApprovalOut
    run: RunOut


def _unacceptable(value: Any) -> str | None:
    """What makes ``value`` (a body) unfit to take, naming its dotted place: the first NaN
    or infinity in it, or a value nested past MAX_DEPTH; None if nothing does. Walked with
    a stack of its own, so no body recurses past Python's limit."""
    stack: list[tuple[Any, str, int]] = [(value, "", 1)]
    while stack:
        item, where, depth = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return f"{where or 'the body'} is NaN or infinite; JSON numbers must be finite"
        if isinstance(item, dict):
            children: list[tuple[Any, Any]] = list(item.items())
        elif isinstance(item, list):
            children = list(enumerate(item))
        else:
            continue
        if depth > MAX_DEPTH:
            place = where if len(where) <= 40 else where[:40] + "…"
            return (
                f"{place} nests arrays and objects more than {MAX_DEPTH} levels deep, past "
                f"what a request may carry; send it at most {MAX_DEPTH} levels deep"
            )
        for key, child in reversed(children):
            stack.append((child, f"{where}.{key}" if where else str(key), depth + 1))
    return None


def approval_out(
    rt: AgentRuntime, req: ApprovalRequest, known: Collection[Any] = ()
) -> ApprovalOut:
    """A request as the API shows it: each field the request's own of that name, but its
    status as a string and its arguments and words (reason, comment) as a person may see
    them (``shown_request``: reason, comment, superseded; ``known``: its run's log's secret
    values, when at hand)."""
    said = shown_request(req, rt.tools, redactor=rt.redactor, known=known)
    data = {name: getattr(said, name) for name in ApprovalOut.model_fields if hasattr(said, name)}
    data.update(
        changed_args=None if req.edited_args is None else changed_args(req.args, req.edited_args),
        status=req.status.value,
        args=shown_args(req, rt.tools, redactor=rt.redactor),
        edited_args=None
        if req.edited_args is None
        else shown_args(req, rt.tools, req.edited_args, redactor=rt.redactor),
    )
    return ApprovalOut.model_validate(data)


def run_out(
    rt: AgentRuntime, run: Run, *, driving: bool = False, known: list[Any] | None = None
) -> RunOut:
    """A run as the API shows it: its goal, output and error as a person may read them,
    masked with the secret values its log holds (``known``, or read from its log: then call
    it off the event loop)."""
    if known is None:
        known = rt.log_secrets(run.thread_id)
    # What a person reads: the output may quote a secret, or repeat a sensitive argument.
    run = shown_run(run, rt.redactor, known=known)
    return RunOut(
        thread_id=run.thread_id,
        status=run.status.value,
        goal=run.goal,
        principal=run.principal.to_dict(),
        output=run.output,
        error=run.error,
        usage=dict(run.usage),
        budget=run.budget.to_dict(),
        budget_report=dict(run.budget_report) if run.budget_report else None,
        pending_approvals=[approval_out(rt, r, known) for r in run.pending_approvals],
        created_at=run.created_at,
        updated_at=run.updated_at,
        message=run.message,
        driving=driving,
    )


def message_out(
    rt: AgentRuntime, message: ThreadMessage, known: list[Any] | None = None
) -> MessageOut:
    """A message as the API shows it: its text and answer as a person may read them, masked
    as its run's are (``known``, or read from the thread's log: then call it off the event
    loop)."""
    if known is None:
        known = rt.log_secrets(message.thread_id)
    data = message.to_dict()
    for said in ("text", "output", "error"):
        data[said] = shown(data[said], rt.redactor, known=known)
    return MessageOut.model_validate(data)
