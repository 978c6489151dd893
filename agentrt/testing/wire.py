"""What a scripted answer looks like on the wire: its usage, its chunks, its tool names."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ToolCallChunk,
    UsageMetadata,
)
from langchain_core.utils.function_calling import convert_to_openai_tool

__all__ = ["capped", "content_length", "input_tokens", "to_chunks", "tool_names", "usage"]


def tool_names(tools: Any) -> tuple[str, ...]:
    """Names of the tools passed with a request, whatever form they come in."""
    if not tools:
        return ()
    names: list[str] = []
    for tool in tools:
        spec = convert_to_openai_tool(tool)
        function = spec.get("function")
        # Provider built-in tools (e.g. {"type": "web_search"}) have no
        # function block; their type is the closest thing to a name.
        if isinstance(function, Mapping) and "name" in function:
            names.append(str(function["name"]))
        else:
            names.append(str(spec.get("name") or spec.get("type")))
    return tuple(names)


def content_length(content: str | list[str | dict[Any, Any]]) -> int:
    if isinstance(content, str):
        return len(content)
    return len(json.dumps(content, sort_keys=True, default=str))


def input_tokens(request: Sequence[BaseMessage]) -> int:
    return max(1, sum(content_length(m.content) for m in request) // 4)


def capped(message: AIMessage, cap: int | None) -> AIMessage:
    """The answer as a provider reports it when the output cap cuts it short."""
    usage = message.usage_metadata
    if cap is None or usage is None or usage["output_tokens"] <= cap:
        return message
    message.usage_metadata = UsageMetadata(
        input_tokens=usage["input_tokens"],
        output_tokens=cap,
        total_tokens=usage["input_tokens"] + cap,
    )
    message.response_metadata = {**message.response_metadata, "finish_reason": "length"}
    return message


def usage(request: Sequence[BaseMessage], response: AIMessage) -> UsageMetadata:
    """Token counts derived from character counts, identical on every run."""
    asked = input_tokens(request)
    output_chars = content_length(response.content)
    if response.tool_calls:
        output_chars += len(json.dumps(response.tool_calls, sort_keys=True))
    output_tokens = max(1, output_chars // 4)
    return UsageMetadata(
        input_tokens=asked,
        output_tokens=output_tokens,
        total_tokens=asked + output_tokens,
    )


def to_chunks(message: AIMessage) -> Iterator[AIMessageChunk]:
    """Split a response into chunks whose sum has its content and tool calls.

    Identity fields ride on the first chunk and usage and response metadata on
    the last, because chunk addition sums usage and concatenates string
    metadata values. Scripted `invalid_tool_calls` are not streamed: chunk
    addition re-parses tool-call arguments leniently, so they cannot survive it.
    """
    identity: dict[str, Any] = {
        "id": message.id,
        "name": message.name,
        "additional_kwargs": copy.deepcopy(message.additional_kwargs),
    }
    pieces: list[str | list[str | dict[Any, Any]]]
    if isinstance(message.content, str):
        pieces = list(re.findall(r"\S+\s*|\s+", message.content))
    else:
        # Content blocks are already structured; splitting them would need
        # provider-specific indexing, so they go out in one piece.
        pieces = [copy.deepcopy(message.content)]
    for piece in pieces:
        yield AIMessageChunk(content=piece, **identity)
        identity = {}

    call_chunks = [
        ToolCallChunk(
            name=call["name"],
            args=json.dumps(call["args"]),
            id=call["id"],
            index=i,
            type="tool_call_chunk",
        )
        for i, call in enumerate(message.tool_calls)
    ]
    for call_chunk in call_chunks:
        yield AIMessageChunk(content="", tool_call_chunks=[call_chunk], **identity)
        identity = {}

    yield AIMessageChunk(
        content="",
        usage_metadata=message.usage_metadata,
        response_metadata=copy.deepcopy(message.response_metadata),
        chunk_position="last",
        **identity,
    )
