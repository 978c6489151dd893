"""An MCP tool as an agentrt tool: its name, effect, argument and result schemas, its answer.

What a server says of a tool is read as the MCP spec means it, and no more kindly: its
annotations are hints, so a tool without them is a write (through the ledger), never
silently a read; readOnlyHint makes a read, destructiveHint an irreversible effect
(prepared, verified, then committed once), idempotentHint an idempotent one. The app has
the last word (ToolOverride). Names become ones every provider's function calling
accepts; the server's own name is what is called.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator

from agentrt.errors import ConfigError
from agentrt.logs import get_logger
from agentrt.tools.contract import Effect
from agentrt.tools.schema_patterns import bounded_validator, check_schema, local_validator

if TYPE_CHECKING:
    from mcp.types import CallToolResult, ToolAnnotations

__all__ = [
    "FUNCTION_NAME",
    "answer_of",
    "effect_of",
    "error_text",
    "function_names",
    "output_type",
]

logger = get_logger("agentrt.mcp")

FUNCTION_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
"""A tool name every provider's function calling takes (OpenAI's rule, the strictest)."""


def function_names(server: str, names: Iterable[str], prefix: str | None) -> dict[str, str]:
    """The name each of a server's tools is offered under, to the server's own name.

    ``prefix`` goes first, joined by "_". A name the pattern refuses has each other
    character replaced by "_" and is cut to 64 characters; two tools that end up with one
    name are a ConfigError naming both.
    """
    offered: dict[str, str] = {}
    for remote in names:
        name = f"{prefix}_{remote}" if prefix else remote
        if not FUNCTION_NAME.match(name):
            fixed = re.sub(r"[^a-zA-Z0-9_-]", "_", name)[:64] or "_"
            logger.info(
                "MCP server %r: tool %r is offered as %r (a function name has only letters, "
                "digits, _ and -, at most 64 of them)",
                server,
                remote,
                fixed,
            )
            name = fixed
        if name in offered:
            raise ConfigError(
                f"MCP server {server!r} lists tools {offered[name]!r} and {remote!r}, which "
                f"both become the function name {name!r} (letters, digits, _ and -, at most "
                "64); leave one out with exclude=[...]"
            )
        offered[name] = remote
    return offered


def effect_of(annotations: ToolAnnotations | None) -> tuple[Effect, bool]:
    """The effect and idempotency a tool's annotations say; a write when they say nothing."""
    if annotations is None:
        return Effect.WRITE, False
    idempotent = annotations.idempotent_hint is True
    if annotations.read_only_hint is True:
        return Effect.READ, idempotent
    if annotations.destructive_hint is True:
        return Effect.IRREVERSIBLE, idempotent
    return Effect.WRITE, idempotent


def output_type(server: str, tool: str, schema: Mapping[str, Any]) -> Any:
    """A type whose validation is the tool's outputSchema (what verify checks results by).

    A schema that is not valid JSON Schema (or has a pattern no engine reads) checks nothing
    and says so once in the log: the server's mistake should not cost the app its other tools.
    """
    from jsonschema.exceptions import SchemaError

    schema = dict(schema)
    # The server writes both the patterns and the values searched: RE2, or bounded in time.
    cls = bounded_validator(schema)
    try:
        check_schema(cls, schema)
    except SchemaError as exc:
        logger.warning(
            "MCP server %r: the outputSchema of tool %r is not valid JSON Schema (%s); its "
            "results are not checked",
            server,
            tool,
            exc.message,
        )
        return Any
    validator = local_validator(cls, schema)

    def check(value: Any) -> Any:
        problems = [
            f"{'/'.join(str(p) for p in err.absolute_path) or '(value)'}: {err.message}"
            for err in validator.iter_errors(value)
        ]
        if problems:
            raise ValueError("; ".join(problems[:5]) + " (by the server's outputSchema)")
        return value

    return Annotated[Any, AfterValidator(check)]


def answer_of(result: CallToolResult) -> Any:
    """What a call gave, as JSON: its structuredContent where it has one, else its text (one
    block: the text; several: joined by newlines), else its content blocks as they are."""
    from mcp.types import TextContent

    if result.structured_content is not None:
        return result.structured_content
    if all(isinstance(b, TextContent) for b in result.content):
        texts = [b.text for b in result.content if isinstance(b, TextContent)]
        return texts[0] if len(texts) == 1 else "\n".join(texts)
    return [b.model_dump(mode="json", by_alias=True, exclude_none=True) for b in result.content]


def error_text(result: CallToolResult) -> str:
    """The words a call that reported an error (isError) gave, for the planner."""
    answer = answer_of(result)
    text = answer if isinstance(answer, str) else json.dumps(answer, sort_keys=True)
    return text.strip() or "the tool reported an error and said nothing more"
