"""Finding a model's entry in a table keyed by model name: its price, its largest answer.

Providers name one model many ways: dated snapshots ("gpt-4o-2024-08-06",
"claude-sonnet-4-5-20250929"), a "provider:" prefix ("openai:gpt-4o"), a router's
"vendor/" ("openai/gpt-4o-mini", as OpenRouter names models). Tables list families.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

__all__ = ["by_model_name"]

_T = TypeVar("_T")


def by_model_name(model_name: str | None, table: Mapping[str, _T]) -> _T | None:
    """The entry of ``model_name``: an exact one, else the longest entry it starts with
    (followed by ``-`` or ``@``), a "provider:" prefix and a router's "vendor/" ignored."""
    if not model_name:
        return None
    name = model_name.rsplit(":", 1)[-1] if ":" in model_name else model_name
    name = name.rsplit("/", 1)[-1]
    for candidate in (model_name, name):
        if candidate in table:
            return table[candidate]
    matches = [key for key in table if name.startswith(key + "-") or name.startswith(key + "@")]
    return table[max(matches, key=len)] if matches else None
