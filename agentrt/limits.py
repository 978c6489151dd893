"""SizeLimits: how large the content a run keeps may be.

A goal, a tool call's arguments and a tool's result are each kept several times over (in
checkpoints, the ledger, recorded model calls and spans), so one 10 MB value grows the
database by far more. A result past inline_result_bytes is therefore kept once, as an
artifact (agentrt.artifacts), and the run keeps its reference. Past a limit a value is
refused with an error that says which limit and how to raise it, before anything is
written. An error's text is not refused but cut (``error_text``): it says what failed in
its first lines, and past them is most often a body quoted whole (an HTML error page).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from agentrt.errors import ConfigError

__all__ = ["ERROR_TEXT_CHARS", "SizeLimits", "error_text", "json_size"]

ERROR_TEXT_CHARS = 8192
"""Characters of an error's text that a tool result, a span or a run's error carries: about
2,000 tokens, an eighth of SizeLimits.inline_result_bytes; room for any message or list of
problems written for a person, and a 10 MB response body an exception quotes costs the
model, the log and every span no more than this."""

# A word the cut would split (a token, a key, a card number): dropped whole, so what is
# left never holds the start of a secret the masking no longer recognises.
_SPLIT_WORD = re.compile(r"[^\s\"'<>(){}\[\],;]{1,256}$")


@dataclass(frozen=True, kw_only=True, slots=True)
class SizeLimits:
    """Largest goal, tool arguments and tool result a run accepts."""

    goal_chars: int = 64_000
    """Characters in a run's goal; a longer one is a ConfigError at start."""
    args_bytes: int = 256 * 1024
    """Bytes of one tool call's arguments as JSON; larger ones are invalid_args."""
    result_bytes: int = 64 * 1024 * 1024
    """Bytes of one tool result as JSON, or of one artifact a tool puts; a larger one is a
    permanent failure of the call."""
    inline_result_bytes: int = 64 * 1024
    """Bytes of one tool result as JSON past which it is stored once, as an artifact: the
    run's state, the ledger, spans and the model see its reference (name, media type,
    size, digest and the start of it as a preview) instead."""

    def __post_init__(self) -> None:
        for name in ("goal_chars", "args_bytes", "result_bytes", "inline_result_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"SizeLimits.{name} must be a whole number >= 1, got {value!r}")


def json_size(value: Any) -> int:
    """Bytes of ``value`` as compact JSON (UTF-8), as it would be stored."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
    return len(text.encode("utf-8", errors="replace"))


def error_text(text: str, limit: int = ERROR_TEXT_CHARS) -> str:
    """``text`` cut to about ``limit`` characters, saying how many were cut; the word the
    cut falls in is dropped whole. Shorter text is returned as it is."""
    if len(text) <= limit:
        return text
    head = _SPLIT_WORD.sub("", text[:limit])
    return f"{head}... [{len(text) - len(head)} more characters cut]"
