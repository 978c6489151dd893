"""Long runs: when to condense a run's older turns, which to keep, and what the model reads.

A run's conversation is built from its event log, which only grows. Past
``Summarize.at_tokens`` (counted as the budget pre-flight counts a prompt) the summarize
node asks a model to condense the older turns into a summary the planner reads instead
of them. What the planner keeps reading word for word: the latest ``keep_turns`` turns,
every tool call not yet answered (a turn is cut only whole, at a plan), the goal, the
person's latest follow-up on a thread that went on (the question it is answering, put
right after the summary once the turns after it are condensed too, so a long follow-up
is condensed as a long first run is), and every approval and denial, which the summary
message quotes. The log itself keeps every event, so replay and the trace still show
everything.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from agentrt.budget import ModelPrice
from agentrt.errors import ConfigError
from agentrt.events import as_messages, describe
from agentrt.state import Event, ObservationKind, Summary

__all__ = [
    "DEFAULT_SUMMARY_INSTRUCTIONS",
    "Summarize",
    "Summarizing",
    "condensed_conversation",
    "cut_point",
    "kept_decisions",
    "summary_message",
    "summary_request",
]

DEFAULT_SUMMARY_INSTRUCTIONS = (
    "You condense the earlier part of an agent's run so that it can carry on with less to "
    "read. Keep every fact the agent still needs to reach its goal: ids, names, amounts and "
    "dates it found, what it did and what each tool returned, what failed and why, and what "
    "is left to do. Leave out chatter. Answer with the summary only, in plain text."
)

# Observations the planner must keep seeing word for word: a person or the policy said no.
_REFUSALS = frozenset(
    {ObservationKind.DENIED.value, ObservationKind.REJECTED.value, ObservationKind.EXPIRED.value}
)


@dataclass(frozen=True, kw_only=True, slots=True)
class Summarize:
    """When and how a long run's older turns are condensed (``AgentRuntime(summarize=...)``)."""

    at_tokens: int
    """Condense once the planner's prompt passes this many tokens, counted as the budget's
    pre-flight counts it (the model's own count, tools included)."""
    keep_turns: int = 4
    """The latest turns (a model answer and what its tool calls returned) kept verbatim."""
    model: BaseChatModel | None = None
    """Who writes the summary; None: the runtime's own model. Its cost counts against the
    run's budget either way, at its price (``prices=``): a cost limit with a summarizer of
    no known price is a ConfigError, as it is for the planner."""
    instructions: str = DEFAULT_SUMMARY_INSTRUCTIONS
    """The summarizer's system prompt."""

    def __post_init__(self) -> None:
        if isinstance(self.at_tokens, bool) or not isinstance(self.at_tokens, int):
            raise ConfigError(f"Summarize.at_tokens is a number of tokens, got {self.at_tokens!r}")
        if self.at_tokens <= 0:
            raise ConfigError(f"Summarize.at_tokens must be > 0, got {self.at_tokens!r}")
        if isinstance(self.keep_turns, bool) or not isinstance(self.keep_turns, int):
            raise ConfigError(f"Summarize.keep_turns is a number of turns, got {self.keep_turns!r}")
        if self.keep_turns < 1:
            raise ConfigError(
                f"Summarize.keep_turns must be >= 1 (the planner needs its last turn), "
                f"got {self.keep_turns!r}"
            )
        if self.model is not None and not isinstance(self.model, BaseChatModel):
            raise ConfigError(
                f"Summarize.model must be a LangChain chat model or None, got {self.model!r}"
            )
        if not isinstance(self.instructions, str) or not self.instructions.strip():
            raise ConfigError(
                f"Summarize.instructions must be a prompt in words, got {self.instructions!r}"
            )


@dataclass(frozen=True, kw_only=True, slots=True)
class Summarizing:
    """Summarize as the nodes use it: the settings, the model that writes, its price."""

    settings: Summarize
    model: BaseChatModel
    price: ModelPrice | None
    """What the summarizer charges (None: unpriced, its calls add tokens but no cost, so
    no max_cost_usd is accepted: agentrt.runs.budgets)."""


def cut_point(events: Sequence[Event], start: int, keep_turns: int) -> int | None:
    """Where the verbatim part of the log begins if the turns from ``start`` are condensed
    now: at a plan, ``keep_turns`` plans from the end, moved earlier past any plan whose
    tool calls are not all answered. None when nothing past ``start`` can be condensed.

    The cut may pass the person's latest follow-up: ``condensed_conversation`` keeps it
    word for word all the same."""
    plans = [i for i in range(start, len(events)) if events[i]["type"] == "plan"]
    if len(plans) <= keep_turns:
        return None
    cut = plans[-keep_turns]
    answered = {e["data"].get("call_id") for e in events[start:] if e["type"] == "observation"}
    for i in plans:
        if i >= cut:
            break
        calls = {a["call_id"] for a in events[i]["data"].get("actions", [])}
        if not calls <= answered:
            cut = i  # a call still waiting for its answer stays with its answer
            break
    return cut if cut > start else None


def condensed_conversation(events: Sequence[Event], summary: Summary) -> list[BaseMessage]:
    """What the planner reads after the goal once ``summary`` condensed the log's first
    ``upto`` events: the summary, the person's latest follow-up word for word if the
    summary covers it (it is the question the run is answering), then the rest verbatim."""
    upto = summary["upto"]
    latest = next((i for i in reversed(range(len(events))) if events[i]["type"] == "message"), -1)
    asked = as_messages([events[latest]]) if 0 <= latest < upto else []
    return [summary_message(summary), *asked, *as_messages(events[upto:])]


def kept_decisions(events: Sequence[Event]) -> list[str]:
    """The approvals and refusals among ``events``, word for word, for the planner to keep
    seeing after they are condensed."""
    kept = []
    for event in events:
        data = event["data"]
        if event["type"] == "approval":
            kept.append(describe(event, width=None))
        elif event["type"] == "observation" and data.get("kind") in _REFUSALS:
            kept.append(
                f"{data.get('tool')} (step {event.get('step_id')}): "
                f"[{data.get('kind')}] {data.get('content')}"
            )
    return kept


def summary_request(
    events: Sequence[Event], previous: Summary | None, instructions: str
) -> list[BaseMessage]:
    """The summarizer's prompt: the summary so far, then the turns to fold into it."""
    lines = []
    if previous is not None:
        lines += ["Summary of the run so far:", previous["text"], ""]
    lines.append("Turns to fold into the summary:")
    for message in as_messages(events):
        lines.append(_line(message))
    return [SystemMessage(instructions), HumanMessage("\n".join(lines))]


def _line(message: BaseMessage) -> str:
    text = message.content if isinstance(message.content, str) else json.dumps(message.content)
    if isinstance(message, AIMessage):
        text = message.text  # its answer, not the reasoning blocks its turn may keep
        calls = "; ".join(
            f"{c['name']}({json.dumps(c['args'], sort_keys=True)})" for c in message.tool_calls
        )
        return f"agent: {text}" + (f" [calls {calls}]" if calls else "")
    if isinstance(message, HumanMessage):  # a follow-up the person sent on the thread
        return f"person: {text}"
    name: Any = getattr(message, "name", None)
    return f"{name or message.type} returned: {text}"


def summary_message(summary: Summary) -> HumanMessage:
    """What the planner reads in place of the condensed turns."""
    parts = [f"[Earlier in this run, condensed]\n{summary['text']}"]
    if summary["kept"]:
        quoted = "\n".join(f"- {line}" for line in summary["kept"])
        parts.append(f"Approvals and refusals so far, word for word (still in force):\n{quoted}")
    return HumanMessage("\n\n".join(parts))
