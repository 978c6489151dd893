"""An app whose runs are full of secrets, one of every kind the Redactor knows, seeded where
a real run would carry them: the model's tool arguments, tool results (and an artifact's
preview), a tool's error
message, the model's answer, a provider error's message, an approver's comment, and a
credential a tool is given (which it logs, echoes in its result and in its error).

Every secret is distinct, so a leak names the place it came from. NEEDLES are what a
surface must never contain: each secret, its other spellings, and a fragment of it (a
secret masked only in part is still a leak).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage
from langgraph.types import RetryPolicy

from agentrt import AgentRuntime, Policy, Principal, ToolContext, ToolError, tool
from agentrt.logs import get_logger
from agentrt.testing import ScriptedChatModel, ai, tool_call
from agentrt.tools.credentials import Credentials

OPENAI_KEY = "sk-proj-Wk3vQ9zLm2Xr7TbN4pYc8HdF1sJgAeU6"  # a provider error quotes it
CARD = "4242 4242 4242 4242"  # passes Luhn; a charge's argument
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ3YWxrZXIifQ.c2lnLXdhbGtlci1qd3Q"  # a tool result
GITHUB_PAT = "github_pat_11WALKER0aBcDeFgHiJkLmN_oPqRsTuVwXyZ0123456789abcdefWALK"  # an error
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYWALKER0KEY"  # after aws_secret_access_key=
IBAN = "GB82 WEST 1234 5698 7654 32"  # passes mod-97; a transfer's argument
EMAIL = "walker.secret@example.org"  # a charge's argument, echoed by its result
PASSWORD = "Tr0ub4dor&3-horse-staple"  # "password: ..." in a memo's prose
ACCESS_TOKEN = "at-7f3k9q2m8x4v-walker"  # a result's accessToken field (camelCase)
PIN = "zebra-58213-quartz"  # a field unlock declares sensitive; its error repeats it
ANSWER_KEY = "sk-live-AnsW3rKeyQ8vL2mX9rT4bY7"  # in the model's final answer
ANSWER_EMAIL = "answers.walker@example.net"  # in the model's final answer
COMMENT_TOKEN = "cmt-9f8e7d6c5b4a-walker"  # "token: ..." in an approver's comment
LOG_CARD = "5555 5555 5555 4444"  # in what a failing store says (the service's logs)
CRM_KEY = "orchid-velvet-31337-lantern"  # a credential: no detector knows its shape
FOLLOW_CARD = "4000 0566 5566 5556"  # passes Luhn; in a follow-up's text
FOLLOW_KEY = "sk-live-F0ll0wUpK3yW4lkerQ2zX"  # in the follow-up's answer

SECRETS = {
    "openai key": (OPENAI_KEY, "Wk3vQ9zLm2Xr7TbN4pYc8HdF"),
    "card": (CARD, CARD.replace(" ", ""), CARD.replace(" ", "-")),
    "jwt": (JWT, "c2lnLXdhbGtlci1qd3Q"),
    "github pat": (GITHUB_PAT, "0123456789abcdefWALK"),
    "aws secret": (AWS_SECRET, "bPxRfiCYWALKER"),
    "iban": (IBAN, IBAN.replace(" ", ""), "5698 7654"),
    "email": (EMAIL, "walker.secret"),
    "password in prose": (PASSWORD, "horse-staple", "Tr0ub4dor"),
    "camelCase accessToken": (ACCESS_TOKEN, "m8x4v-walker"),
    "declared sensitive field": (PIN, "58213-quartz"),
    "answer key": (ANSWER_KEY, "AnsW3rKeyQ8vL2mX"),
    "answer email": (ANSWER_EMAIL, "answers.walker"),
    "comment token": (COMMENT_TOKEN, "9f8e7d6c5b4a"),
    "logged card": (LOG_CARD, LOG_CARD.replace(" ", "")),
    "crm credential": (CRM_KEY,),
    "follow-up card": (FOLLOW_CARD, FOLLOW_CARD.replace(" ", "")),
    "follow-up answer key": (FOLLOW_KEY, "F0ll0wUpK3y"),
}
"""Name -> needles: the secret and the spellings and fragments that would leak it."""

GOAL = "Settle the walker account."
FOLLOW_UP = f"Put it on my other card, {FOLLOW_CARD}, and mail {EMAIL}."
FAIL_GOAL = "Settle the walker account with the broken provider."
COMMENT = f"checked by phone; token: {COMMENT_TOKEN}"
OPERATOR = Principal("olive", roles=["operator"], tenant="acme")
APPROVER = Principal("abe", roles=["approver"], tenant="acme")

# Made with plain logging before any runtime exists: a runtime puts the filter on it too.
early = logging.getLogger("agentrt.walk.early")

POLICY = """
version: 1
name: walk
default: allow
credentials:
  crm: {tenants: [acme]}
rules:
  - id: transfers
    match: {tools: [transfer]}
    decision: require_approval
    approval: {role: approver}
    reason: Transfers need an approver.
"""


@tool(effect="write", idempotent=True, sensitive=["card_number"])
def charge(customer_email: str, card_number: str, note: str, ctx: ToolContext) -> dict[str, Any]:
    """Charge a card and mail the receipt."""
    receipt = ctx.artifacts.put(  # an artifact whose preview quotes secrets
        "receipt.txt",
        f"receipt for {customer_email}\nticket {JWT}\n",
        preview=f"receipt for {customer_email}, ticket {JWT}",
    )
    return {
        "receipt_to": customer_email,
        "accessToken": ACCESS_TOKEN,
        "ticket": JWT,
        "receipt": receipt,
    }


@tool(effect="write", idempotent=True, sensitive=["pin"])
def unlock(door: str, pin: str) -> dict[str, Any]:
    """Unlock a door with its pin."""
    raise ValueError(f"door {door!r} refused pin {pin}; ask ops with {GITHUB_PAT}")


@tool(effect="write", idempotent=True)
def transfer(iban: str, memo: str) -> dict[str, Any]:
    """Send money to an account."""
    return {"sent": True}


@tool(effect="write", idempotent=True, credentials=["crm"])
def crm_sync(account: str, fail: bool, ctx: ToolContext) -> dict[str, Any]:
    """Sync an account with the CRM."""
    key = ctx.credentials["crm"]
    get_logger("agentrt.walk.crm").warning("syncing %s with key %s", account, key)
    if fail:
        raise ToolError(f"the CRM refused key {key} for {account}")
    return {"synced": account, "auth": f"Basic {key}", key: "echoed as a key too"}


def _first_turn(messages: list[BaseMessage]) -> Any:
    goal = next(m.content for m in messages if isinstance(m, HumanMessage))
    if goal == FAIL_GOAL:
        raise RuntimeError(
            f"Error code: 401 - Incorrect API key provided: {OPENAI_KEY}. You can find your "
            "API key at https://platform.openai.com/account/api-keys."
        )
    return ai(
        "Charging the card, then the door.",
        tool_call(
            "charge",
            {
                "customer_email": EMAIL,
                "card_number": CARD,
                "note": f"rotate aws_secret_access_key={AWS_SECRET} after",
            },
        ),
        tool_call("unlock", {"door": "back", "pin": PIN}),
    )


SCRIPT = [
    _first_turn,
    ai("", tool_call("transfer", {"iban": IBAN, "memo": f"the password: {PASSWORD} works"})),
    ai(
        "",
        tool_call("crm_sync", {"account": "walker", "fail": False}),
        tool_call("crm_sync", {"account": "walker", "fail": True}),
    ),
    # The answer repeats a sensitive argument: masked wherever the answer is shown.
    f"Done. Your new key is {ANSWER_KEY}; write to {ANSWER_EMAIL} with questions. The "
    f"back door refused pin {PIN}.",
    f"Noted. The card is on file; your next key is {FOLLOW_KEY}.",  # answers FOLLOW_UP
]


def build_runtime(db: str | Path = "walk.db", **kwargs: Any) -> AgentRuntime:
    kwargs.setdefault("capture_content", True)
    return AgentRuntime(
        ScriptedChatModel(SCRIPT),
        tools=[charge, unlock, transfer, crm_sync],
        policy=Policy.from_yaml(POLICY),
        db=db,
        credentials=Credentials.from_callable(lambda name, principal: CRM_KEY),
        # One attempt: the provider error is final at once, with no retry's backoff to wait.
        model_retry=RetryPolicy(max_attempts=1),
        **kwargs,
    )
