"""JSON Schemas of the GenAI semantic conventions' content attributes, as agentrt emits them.

Written from the conventions' text (gen_ai.system_instructions, gen_ai.input.messages,
gen_ai.output.messages, gen_ai.tool.definitions): a message is {role, parts}, an output
message has a finish_reason too, a part is one of a closed set of shapes told apart by its
type. The part shapes agentrt writes are held closed here (no other keys), stricter than
the conventions, so a stray key from an older shape ("content", "tool_calls" on a message)
fails at once.
"""

from __future__ import annotations

from typing import Any

import jsonschema

_TEXT = {
    "type": "object",
    "properties": {"type": {"const": "text"}, "content": {"type": "string"}},
    "required": ["type", "content"],
    "additionalProperties": False,
}
_REASONING = {
    "type": "object",
    "properties": {"type": {"const": "reasoning"}, "content": {"type": "string"}},
    "required": ["type", "content"],
    "additionalProperties": False,
}
_TOOL_CALL = {
    "type": "object",
    "properties": {
        "type": {"const": "tool_call"},
        "id": {"type": ["string", "null"]},
        "name": {"type": "string"},
        "arguments": {},
    },
    "required": ["type", "name"],
    "additionalProperties": False,
}
_TOOL_CALL_RESPONSE = {
    "type": "object",
    "properties": {
        "type": {"const": "tool_call_response"},
        "id": {"type": ["string", "null"]},
        "response": {},
    },
    "required": ["type", "response"],
    "additionalProperties": False,
}
_PART = {"oneOf": [_TEXT, _REASONING, _TOOL_CALL, _TOOL_CALL_RESPONSE]}
_ROLE = {"enum": ["system", "user", "assistant", "tool"]}

INPUT_MESSAGES: dict[str, Any] = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {
            "role": _ROLE,
            "parts": {"type": "array", "items": _PART},
            "name": {"type": ["string", "null"]},
        },
        "required": ["role", "parts"],
        "additionalProperties": False,
    },
}
OUTPUT_MESSAGES: dict[str, Any] = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {
            "role": _ROLE,
            "parts": {"type": "array", "items": _PART},
            "name": {"type": ["string", "null"]},
            "finish_reason": {"enum": ["stop", "length", "content_filter", "tool_call", "error"]},
        },
        "required": ["role", "parts", "finish_reason"],
        "additionalProperties": False,
    },
}
SYSTEM_INSTRUCTIONS: dict[str, Any] = {"type": "array", "items": _PART}
TOOL_DEFINITIONS: dict[str, Any] = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {
            "type": {"const": "function"},
            "name": {"type": "string"},
            "description": {"type": "string"},
            "parameters": {"type": "object"},
        },
        "required": ["type", "name"],
        "additionalProperties": False,
    },
}


def check(value: Any, schema: dict[str, Any]) -> None:
    """Raise jsonschema's ValidationError, naming the item, if ``value`` is off the shape."""
    jsonschema.validate(value, schema)
