"""A run's model calls repeat its conversation: content capture shows each message once
(agentrt.tracing.shown.MessagesShown) and shows it again only when what it depends on
changed, with the same result as showing the whole conversation afresh."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from agentrt.redaction import Redactor
from agentrt.tracing.shown import MessagesShown, shown_again, shown_messages

SECRET = "hunter2-xyz"


def _sensitive_of(name: str) -> tuple[str, ...]:
    return ("password",) if name == "login" else ()


class _Counting(Redactor):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def redact(self, value: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return super().redact(value, **kwargs)


def _conversation() -> list[Any]:
    return [
        HumanMessage(f"log in; my password is {SECRET}"),
        AIMessage("", tool_calls=[{"id": "c1", "name": "lookup", "args": {"q": "site"}}]),
        ToolMessage("example.org", tool_call_id="c1", name="lookup"),
        AIMessage("", tool_calls=[{"id": "c2", "name": "login", "args": {"password": SECRET}}]),
        ToolMessage(f"logged in with {SECRET}", tool_call_id="c2", name="login"),
        AIMessage("done"),
    ]


def test_each_turn_shows_what_showing_the_whole_conversation_afresh_shows() -> None:
    messages = _conversation()
    remembered = MessagesShown(Redactor(), _sensitive_of)
    for turn in range(1, len(messages) + 1):
        prefix = messages[:turn]
        fresh = shown_messages(prefix, Redactor(), _sensitive_of)
        assert remembered(prefix) == fresh
        assert remembered(prefix, output=True) == shown_messages(
            prefix, Redactor(), _sensitive_of, output=True
        )
    # The secret became known at the login call: the first message, shown before that
    # unmasked, is masked from then on.
    first = remembered(messages[:1])[0]
    assert SECRET in str(first)
    assert SECRET not in str(remembered(messages)[0])
    assert SECRET not in str(remembered(messages))


def test_a_message_is_shown_once_while_nothing_it_depends_on_changes() -> None:
    counting = _Counting()
    remembered = MessagesShown(counting, _sensitive_of)
    messages = _conversation()[:3]
    remembered(messages)
    before = counting.calls
    remembered([*messages, AIMessage("next")])
    assert counting.calls - before == 1  # only the new message


def test_a_shown_conversation_is_shown_again_only_with_more_to_cut() -> None:
    shown = MessagesShown(Redactor(), _sensitive_of)(_conversation())
    assert shown_again(shown, Redactor(), (), ()) is shown
    again = shown_again(shown, Redactor(), (), ["example.org"])
    assert "example.org" not in str(again)
