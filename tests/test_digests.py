"""The digests records are keyed by: stable spellings, so every process and version agrees."""

from __future__ import annotations

import threading

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from agentrt.digests import GrowingRequest, request_digest
from tests.conftest import run_interleaved


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


def test_a_growing_request_s_digest_is_request_digest_at_every_length() -> None:
    asked = [
        SystemMessage("You are the refund desk."),
        HumanMessage("Refund order 17 für Zoë."),
        AIMessage("", tool_calls=[{"name": "refund", "args": {"order": 17}, "id": "c1"}]),
        ToolMessage([{"type": "text", "text": "refunded"}], tool_call_id="c1"),
        AIMessage("Done."),
    ]
    growing = GrowingRequest()
    assert growing.digest([]) == request_digest([])
    for length in range(1, len(asked) + 1):
        assert growing.digest(asked[:length]) == request_digest(asked[:length])
    # The same again, and a list that is not the digested one grown: worked out afresh.
    assert growing.digest(asked) == request_digest(asked)
    other = [asked[0], HumanMessage("Refund order 18."), *asked[2:]]
    assert growing.digest(other) == request_digest(other)
    assert growing.digest(asked[:2]) == request_digest(asked[:2])
    assert growing.digest(asked) == request_digest(asked)
    assert request_digest(other) != request_digest(asked)


def test_a_growing_request_digested_from_two_threads_at_once_stays_right() -> None:
    # One is kept per thread id in a process: two replays of one run may plan at once.
    asked = [HumanMessage(f"turn {i} " * 20) for i in range(300)]
    growing, barrier, wrong = GrowingRequest(), threading.Barrier(2), []

    def digest(lengths: range) -> None:
        for length in lengths:
            barrier.wait(timeout=60)
            if growing.digest(asked[:length]) != request_digest(asked[:length]):
                wrong.append(length)

    run_interleaved(*(threading.Thread(target=digest, args=(range(n, 301, 2),)) for n in (1, 2)))
    assert wrong == []


def test_a_message_that_cannot_be_digested_leaves_the_growing_request_as_it_was() -> None:
    asked = [SystemMessage("You are the refund desk."), HumanMessage("Refund order 17.")]
    growing = GrowingRequest()
    growing.digest(asked)
    with pytest.raises(UnicodeEncodeError):  # request_digest refuses it too
        growing.digest([*asked, ToolMessage("\ud800", tool_call_id="c1")])
    more = [*asked, ToolMessage("refunded", tool_call_id="c1")]
    assert growing.digest(more) == request_digest(more)
