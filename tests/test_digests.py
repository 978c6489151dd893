"""The digests records are keyed by: stable spellings, so every process and version agrees."""

from __future__ import annotations

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from agentrt.digests import request_digest


def test_a_request_digest_is_the_same_whatever_the_message_kinds() -> None:
    asked = [
        SystemMessage("You are the refund desk."),
        HumanMessage("Refund order 17."),
        AIMessage("", tool_calls=[{"name": "refund", "args": {"order": 17}, "id": "c1"}]),
        ToolMessage("refunded", tool_call_id="c1"),
        AIMessage("Done."),
    ]
    # Pinned (as the digest was before it read fields directly): recordings keep it, and
    # replay compares a new request's with it.
    assert request_digest(asked) == (
        "e9ee2421aefc15e003f7e1a9adf45e53940e5577e5d4f29ff91c91e4770dff02"
    )
