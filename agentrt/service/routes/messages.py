"""/runs/{id}/messages: follow-ups on a thread, and the thread's messages so far."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Response

from agentrt.budget import Budget
from agentrt.errors import ThreadBusy
from agentrt.runtime import Run
from agentrt.service.auth import Caller, current_service
from agentrt.service.context import Service
from agentrt.service.paths import RUN, quoted
from agentrt.service.problems import Problem
from agentrt.service.routes.runs import TenantRun, acted_on
from agentrt.service.schemas import (
    MessageIn,
    MessageList,
    MessageOut,
    message_out,
)

__all__ = ["router"]

router = APIRouter(tags=["runs"])

ServiceDep = Annotated[Service, Depends(current_service)]


@router.post(f"{RUN}/messages", status_code=202, response_model=MessageOut)
async def send_message(
    run: Annotated[Run, acted_on("send a message into a thread")],
    body: MessageIn,
    key: Caller,
    service: ServiceDep,
    response: Response,
) -> MessageOut:
    """Send a follow-up on the thread, as the caller; it is answered in the background
    with the thread's history. Follow it with GET /runs/{id}/events or poll the run.

    A thread still at work or waiting at a gate: ``double_texting`` says what happens (409
    for reject; the runtime's policy when omitted). A ``budget`` limits this message alone
    and can only tighten what the runtime and the caller's tenant allow. The sender must be
    of the thread's tenant: 404 for another tenant's thread, 403 for a key of every tenant
    (it reads and decides, and speaks in no tenant's thread).
    """
    rt = service.runtime
    size = len(body.message.encode("utf-8", "surrogatepass"))
    limit = service.settings.max_goal_bytes
    if size > limit:
        raise Problem(
            422,
            f"the message is {size} bytes (UTF-8), over this service's limit of {limit}; "
            "say it in fewer words, and leave long material where a tool can read it",
            type="message-too-long",
            max_goal_bytes=limit,
        )
    budget = None
    if body.budget is not None:
        asked = Budget.from_dict(body.budget.model_dump(exclude_none=True))
        rt.budget_for(key.principal).tightened(asked)  # refuses what would loosen a limit
        budget = asked
    try:
        kept = await asyncio.to_thread(
            rt.keep_message,
            run.thread_id,
            body.message,
            principal=key.principal,
            budget=budget,
            double_texting=body.double_texting,
        )
    except ThreadBusy as busy:
        raise Problem(409, str(busy), type="thread-busy", status_now=busy.status) from None
    service.worker.drive(run.thread_id)
    response.headers["Location"] = f"/runs/{quoted(run.thread_id)}/messages"
    # Keeping a message adds nothing to the log: what the row as read holds masks it.
    known = await asyncio.to_thread(service.secrets.known, run)
    return message_out(rt, kept, known)


@router.get(f"{RUN}/messages", response_model=MessageList)
async def list_messages(run: TenantRun, service: ServiceDep) -> MessageList:
    """The thread's messages in order: its goal (index 0), then each follow-up, queued or
    answered, with its answer and what it spent."""
    rt = service.runtime

    def shown() -> list[MessageOut]:
        found = rt.messages(run.thread_id)
        known = service.secrets.known(run)  # the log once, for every message
        return [message_out(rt, m, known) for m in found]

    return MessageList(messages=await asyncio.to_thread(shown))
