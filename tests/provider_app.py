"""An app whose model is langchain-openai's ChatOpenAI, over HTTP to the test's server.

The server's base URL comes from AGENTRT_TEST_OPENAI_URL, so the CLI can load the app
with ``--app tests.provider_app:build_runtime --db FILE``. Its one tool, ``transfer``,
moves money irreversibly and needs a treasurer's approval; every transfer it makes is a
line in the file beside the database, so a test counts them across processes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from langchain_openai import ChatOpenAI

from agentrt import AgentRuntime, Policy, Principal, tool

OPERATOR = Principal("olga", tenant="acme")
TREASURER = Principal("tess", roles=["treasurer"], tenant="acme")

POLICY = Policy(
    [
        {
            "id": "transfers",
            "match": {"tools": ["transfer"]},
            "decision": "require_approval",
            "approval": {"role": "treasurer"},
            "reason": "Money leaves only with a treasurer's approval.",
        }
    ]
)


def transfers_path(db: str | Path) -> Path:
    return Path(f"{db}.transfers")


def transfers(db: str | Path) -> list[str]:
    path = transfers_path(db)
    return path.read_text().splitlines() if path.exists() else []


def chat(url: str, **options: Any) -> ChatOpenAI:
    """ChatOpenAI as a user makes it for an OpenAI-compatible server."""
    options.setdefault("api_key", "sk-test-0123456789abcdef")
    return ChatOpenAI(model="gpt-4o-mini", base_url=url, **options)


def build_runtime(
    db: str | Path = "agentrt.db", *, model: Any = None, **options: Any
) -> AgentRuntime:
    @tool(effect="irreversible")
    def transfer(account: str, amount: float) -> dict[str, Any]:
        """Send money to an account; it cannot be taken back.

        Args:
            account: The account to pay, e.g. "acme-7".
            amount: How much, in dollars.
        """
        with transfers_path(db).open("a") as sink:
            sink.write(f"{account} {amount:g}\n")
        return {"sent": amount, "to": account}

    if model is None:
        model = chat(os.environ["AGENTRT_TEST_OPENAI_URL"])
    options.setdefault("policy", POLICY)
    return AgentRuntime(model, tools=[transfer], db=db, **options)
