"""Chat messages in the shape of OpenTelemetry's GenAI semantic conventions.

The conventions carry a model call's content as JSON: ``gen_ai.system_instructions`` (a
list of parts), ``gen_ai.input.messages`` and ``gen_ai.output.messages`` (messages of
``{role, parts}``, an output message with its ``finish_reason``) and
``gen_ai.tool.definitions``. A part is ``{type: "text", content}``, ``{type: "tool_call",
id, name, arguments}`` or ``{type: "tool_call_response", id, response}``. Backends check
the shape (Arize Phoenix drops a whole list for one item that does not fit), so every
message is built here, from LangChain's, and nowhere else. Nothing here masks: what is
shown passes ``agentrt.tracing.shown`` first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = [
    "FINISH_REASONS",
    "finish_reason",
    "input_message",
    "model_names",
    "model_temperature",
    "output_message",
    "split_system",
    "tool_definitions",
]

_ROLES = {
    "human": "user",
    "ai": "assistant",
    "AIMessageChunk": "assistant",
    "tool": "tool",
    "system": "system",
}

FINISH_REASONS = {
    # OpenAI's words
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_call",
    "function_call": "tool_call",
    "content_filter": "content_filter",
    # Anthropic's
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_call",
    "refusal": "content_filter",
    # Google's
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
}
"""Providers' reasons for stopping, in the conventions' words (stop, length, tool_call,
content_filter, error); a reason not listed is passed on as the provider said it."""


def split_system(messages: Sequence[Any]) -> tuple[list[dict[str, Any]], list[Any]]:
    """The system prompt as a list of parts (``gen_ai.system_instructions``), and the
    other messages, which are the chat history (``gen_ai.input.messages``)."""
    system: list[dict[str, Any]] = []
    rest: list[Any] = []
    for message in messages:
        if getattr(message, "type", None) == "system":
            system += _content_parts(getattr(message, "content", ""))
        else:
            rest.append(message)
    return system, rest


def input_message(message: Any) -> dict[str, Any]:
    """One chat message as ``{role, parts}``: a tool's result as a tool_call_response part
    with the id of the call it answers, a model's tool calls as tool_call parts."""
    kind = getattr(message, "type", None)
    if kind == "tool":
        return {
            "role": "tool",
            "parts": [
                {
                    "type": "tool_call_response",
                    "id": _text_or_none(getattr(message, "tool_call_id", None)),
                    "response": getattr(message, "content", ""),
                }
            ],
        }
    parts = _content_parts(getattr(message, "content", message))
    for call in getattr(message, "tool_calls", None) or ():
        parts.append(
            {
                "type": "tool_call",
                "id": _text_or_none(call.get("id")),
                "name": str(call.get("name")),
                "arguments": call.get("args"),
            }
        )
    # A ChatMessage says its own role; LangChain's other messages say it by their type.
    role = _ROLES.get(str(kind)) or str(getattr(message, "role", None) or kind or "user")
    return {"role": role, "parts": parts or [{"type": "text", "content": ""}]}


def output_message(message: Any) -> dict[str, Any]:
    """The model's answer as an output message: ``{role, parts, finish_reason}``."""
    return {**input_message(message), "finish_reason": finish_reason(message)}


def finish_reason(message: Any) -> str:
    """Why the model stopped, in the conventions' words; when the provider did not say,
    tool_call for an answer that calls tools and stop for one that does not."""
    info = getattr(message, "response_metadata", None) or {}
    given = info.get("finish_reason") or info.get("stop_reason")
    if isinstance(given, str) and given:
        return FINISH_REASONS.get(given, given)
    return "tool_call" if getattr(message, "tool_calls", None) else "stop"


def tool_definitions(offered: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The tools offered to the model (OpenAI-style function schemas, as bind_tools takes
    them) as ``gen_ai.tool.definitions``: ``{type, name, description, parameters}``."""
    out = []
    for schema in offered:
        function = schema.get("function")
        spec = function if isinstance(function, Mapping) else schema
        item: dict[str, Any] = {"type": str(schema.get("type") or "function")}
        item["name"] = str(spec.get("name"))
        if spec.get("description"):
            item["description"] = spec["description"]
        if spec.get("parameters") is not None:
            item["parameters"] = spec["parameters"]
        out.append(item)
    return out


def _content_parts(content: Any) -> list[dict[str, Any]]:
    """A message's content (text, or LangChain's list of blocks) as parts: text as text,
    reasoning as reasoning, any other block as a part of its own type."""
    if content is None or content == "":
        return []
    if not isinstance(content, list):
        return [{"type": "text", "content": content if isinstance(content, str) else str(content)}]
    parts: list[dict[str, Any]] = []
    for block in content:
        if isinstance(block, str):
            parts.append({"type": "text", "content": block})
        elif not isinstance(block, Mapping):
            parts.append({"type": "text", "content": str(block)})
        elif block.get("type") == "text":
            parts.append({"type": "text", "content": str(block.get("text", ""))})
        elif block.get("type") in ("reasoning", "thinking"):
            said = block.get("reasoning") or block.get("thinking") or block.get("text") or ""
            parts.append({"type": "reasoning", "content": str(said)})
        else:
            parts.append({**block, "type": str(block.get("type") or "unknown")})
    return parts


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def model_names(model: Any) -> tuple[str | None, str | None]:
    """A chat model's name and provider as a model call's span names them (either None
    where the model does not say)."""
    name = getattr(model, "model_name", None) or getattr(model, "model", None)
    provider = None
    try:
        params = model._get_ls_params()
        name = name or params.get("ls_model_name")
        provider = params.get("ls_provider")
    except Exception:  # naming is best effort; a model without ls params is still traced
        pass
    return (name if isinstance(name, str) else None, provider)


def model_temperature(model: Any) -> float | None:
    """A chat model's temperature, if it has a number for one."""
    value = getattr(model, "temperature", None)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
