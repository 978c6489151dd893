"""Events said in words: the small pieces every event's line for a person is made of."""

from __future__ import annotations

import re
from collections.abc import Mapping
from json import dumps as _dumps
from typing import Any

__all__ = ["actions", "join", "json_text", "text", "version", "word"]


def join(head: str, step: str, rest: str) -> str:
    return f"{head} {step}: {rest}" if step else f"{head}: {rest}"


def version(name: Any, number: Any) -> str:
    return f"{word(name)}@{word(number)}"


def word(value: Any) -> str:
    """A name or a status as text; "?" where the event has none."""
    return "?" if value is None or value == "" else str(value)


def actions(data: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    found = data.get("actions")
    return [a for a in found if isinstance(a, Mapping)] if isinstance(found, list) else []


def json_text(value: Any) -> str:
    return value if isinstance(value, str) else _dumps(value, ensure_ascii=False, default=str)


_SPACE = re.compile(r"\s+")


def text(value: Any, width: int | None) -> str:
    """``value`` as text on one line, cut to ``width``; None is no text."""
    if value is None:
        return ""
    said = _SPACE.sub(" ", str(value)).strip()
    if width is None or len(said) <= width:
        return said
    return said[: max(width - 3, 1)] + "..."
