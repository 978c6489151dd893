"""What a model's answer to a plan step holds, as the run keeps it: its text (the run's
output when it is final), the blocks its turn goes back to the model as, its tool calls as
actions whose ids are unique in the turn, and why an answer cannot be acted on."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, NamedTuple

from langchain_core.messages import AIMessage

from agentrt.limits import SizeLimits, json_size
from agentrt.state import Action, storable_text, unstorable
from agentrt.tools.registry import ToolRegistry

__all__ = [
    "AnswerTokens",
    "answer_actions",
    "answer_blocks",
    "answer_text",
    "answer_tokens",
    "unusable",
]


def answer_text(response: AIMessage) -> str:
    """The answer's text: its text blocks joined when its content is a list of blocks
    (LangChain's standard content, a reasoning model's answer), never its reasoning."""
    return storable_text(str(response.text))


def answer_blocks(response: AIMessage) -> list[Any] | None:
    """The answer's content as the model gave it, for its turn to go back to it as it was;
    None when its text says it all (a string, or text blocks and nothing else).

    A provider that reasons before a tool call needs that reasoning back with the call
    (Anthropic refuses a turn whose thinking block or its signature is missing). The blocks
    are made plain JSON that storage keeps: text that is not text becomes U+FFFD and an
    integer past 64 bits its digits, as the answer's text and ids are. They are the model's
    own output, so bounded as its text is, by its output cap.
    """
    content = response.content
    if isinstance(content, str) or all(_plain_text(block) for block in content):
        return None
    plain: list[Any] = json.loads(json.dumps(content, default=str))
    return [_storable(block) for block in plain]


def _plain_text(block: Any) -> bool:
    if isinstance(block, str):
        return True
    return (
        isinstance(block, dict) and block.get("type") == "text" and set(block) <= {"type", "text"}
    )


def _storable(value: Any) -> Any:
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, dict):
        return {storable_text(k): _storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_storable(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and unstorable(value):
        return str(value)
    return value


# Finish reasons that say the provider withheld the answer, in whole or in part: OpenAI's
# and Azure's filter, Anthropic's refusal, Gemini's safety stops (compared lower-cased).
_WITHHELD = frozenset(
    {"content_filter", "refusal", "safety", "prohibited_content", "blocklist", "spii"}
)
_QUOTED = 500
"""Characters of a refusal quoted in the run's error."""


def unusable(response: AIMessage, revision: int) -> str | None:
    """Why the answer to plan step ``revision`` can neither end the run nor plan a step, in
    words for the run's error; None when it can.

    A refusal, an answer the provider withheld and an answer with nothing in it end the run
    failed: reported as a success, the run's output would be empty and nobody told why.
    Asking again would send the very same request, which a refusal or a filter answers the
    same way, and would pay for it.
    """
    refusal = _refusal(response)
    finish = _finish_reason(response)
    if refusal is not None:
        text = storable_text(refusal.strip())
        said = f": {text[:_QUOTED]!r}" if text else " (it gave no reason)"
        cut = " (cut)" if len(text) > _QUOTED else ""
        return (
            f"the model refused to answer plan step {revision}{said}{cut}; change the goal "
            "or the instructions, or have a person take the task"
        )
    if finish is not None and finish.lower() in _WITHHELD:
        return (
            f"the provider withheld the model's answer to plan step {revision} (finish "
            f"reason {finish!r}), so nothing of it was acted on; change the goal or the "
            "instructions, or have a person take the task"
        )
    if not response.text.strip() and not response.tool_calls and not response.invalid_tool_calls:
        return (
            f"the model's answer to plan step {revision} had no text and no tool call "
            f"(finish reason {finish!r}): nothing to act on or to report; start the run "
            "again, and look at the model's call in the run's trace if it recurs"
        )
    return None


def _refusal(response: AIMessage) -> str | None:
    """The refusal's words ("" when it gave none); None when the model did not refuse."""
    # OpenAI's `refusal` field, kept by langchain-openai in additional_kwargs; the standard
    # content's refusal block (an Anthropic refusal stop, a Responses API refusal).
    said = response.additional_kwargs.get("refusal")
    if isinstance(said, str) and said:
        return said
    for block in _standard_blocks(response):
        if block.get("type") == "refusal":
            return str(block.get("refusal") or "")
    return None


def _standard_blocks(response: AIMessage) -> list[Any]:
    """The answer's standard content blocks; its own blocks as they are when a provider's
    translator fails on them (it reads malformed content with no checks)."""
    try:
        return [b for b in response.content_blocks if isinstance(b, dict)]
    except Exception:  # an odd answer is judged by what it holds, never a failed run
        content = response.content
        return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


def _finish_reason(response: AIMessage) -> str | None:
    info = response.response_metadata
    found = info.get("finish_reason") or info.get("stop_reason")
    return str(found) if found else None


def answer_actions(
    response: AIMessage, revision: int, limits: SizeLimits, tools: ToolRegistry
) -> list[Action]:
    """The answer's tool calls as the plan's actions, in order, each id unique in the turn:
    what is stored, what the tools are run as and what goes back to the model all read
    these ids, and a replay of the recorded answer makes the same ones."""
    actions: list[Action] = []
    taken: set[str] = set()
    for call in response.tool_calls:
        index = len(actions)
        action = Action(
            step_id=f"{revision}.{index}",
            call_id=_unique_id(call.get("id"), revision, index, taken),
            tool=storable_text(call["name"]),
            args=dict(call["args"]),
        )
        if problem := _unkeepable(action["args"], limits):
            # Kept, the run could not checkpoint (or would swell): the model is told, as for
            # arguments that are not JSON, and nothing of them is stored.
            action["args"] = {}
            action["parse_error"] = problem
        actions.append(action)
    # Calls whose arguments were not even JSON still get a step, so the model is told.
    for bad in response.invalid_tool_calls:
        index = len(actions)
        name = storable_text(bad.get("name") or "")
        actions.append(
            Action(
                step_id=f"{revision}.{index}",
                call_id=_unique_id(bad.get("id"), revision, index, taken),
                tool=name,
                args={},
                parse_error=_not_json(bad.get("args"), bad.get("error"), tools, name),
            )
        )
    return actions


def _unique_id(given: Any, revision: int, index: int, taken: set[str]) -> str:
    """The call's id as the provider gave it (made storable), or ``call_{revision}_{index}``
    for one missing or given already in the turn: some OpenAI-compatible servers number
    calls per answer or repeat one, and two results under one id cannot be told apart (a
    provider that checks, as Anthropic does, refuses the next request)."""
    found = storable_text(given) if isinstance(given, str) else ""
    if not found or found in taken:
        found = f"call_{revision}_{index}"
        while found in taken:  # the provider's own ids may look like ours
            found += "_"
    taken.add(found)
    return found


def _not_json(args: Any, error: Any, tools: ToolRegistry, name: str) -> str:
    """The parse error of arguments that are not JSON, naming what storage cannot keep."""
    raw = args if isinstance(args, str) else ""
    said = str(error) if error else "parse error"
    # Quoted only for a known tool with no sensitive field: text that is not JSON cannot be
    # masked field by field, and the step's error is kept and shown. LangChain's parse
    # error repeats the text, so it is cut out of that too.
    spec = tools.get(name)
    quoted = ""
    if spec is not None and not spec.sensitive:
        quoted = f": {args!r}"
    elif raw:
        said = said.replace(raw, "<the arguments>")
    problem = unstorable(raw, "their text")
    held = f"; {problem}" if problem else ""
    return storable_text(f"arguments are not valid JSON{quoted} ({said}){held}")


def _unkeepable(args: dict[str, Any], limits: SizeLimits) -> str | None:
    if problem := unstorable(args):
        return f"{problem}; give a value that fits"
    size = json_size(args)
    if size > limits.args_bytes:
        return (
            f"the arguments are {size:,} bytes, over the runtime's limit of "
            f"{limits.args_bytes:,} (SizeLimits.args_bytes); pass less"
        )
    return None


class AnswerTokens(NamedTuple):
    """One answer's tokens: as it reported them, or estimated where it could not have."""

    input: int
    output: int
    estimated: int
    """How many of them were estimated (0: all reported)."""


def answer_tokens(response: AIMessage, estimate: Callable[[], tuple[int, int]]) -> AnswerTokens:
    """The answer's tokens as it reported them; ``estimate``d where it reported none, or a
    zero it cannot have had (some OpenAI-compatible servers and proxies send usage as
    zeros): a prompt is never empty, nor an answer with content. Never a silent zero
    against a limit."""
    meta = response.usage_metadata
    reported = (meta["input_tokens"], meta["output_tokens"]) if meta is not None else (0, 0)
    said = bool(response.content or response.tool_calls or response.invalid_tool_calls)
    guess_input = meta is None or reported[0] <= 0
    guess_output = meta is None or (reported[1] <= 0 and said)
    if not (guess_input or guess_output):
        return AnswerTokens(reported[0], reported[1], 0)
    guessed = estimate()
    input_tokens = guessed[0] if guess_input else reported[0]
    output_tokens = guessed[1] if guess_output else reported[1]
    estimated = (guessed[0] if guess_input else 0) + (guessed[1] if guess_output else 0)
    return AnswerTokens(input_tokens, output_tokens, estimated)
