"""What a tool's Python function says about it, and the JSON forms of values.

The description and per-argument texts of a Google-style docstring, the result schema of
a return annotation, where a NaN or infinity hides in arguments, and how a result is shown
to the model. Kept apart from the contract so that it stays about the contract.
"""

from __future__ import annotations

import inspect
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any, get_type_hints

from pydantic import TypeAdapter

from agentrt.errors import ConfigError

__all__ = ["docstring_parts", "non_finite", "result_adapter", "returns_schema", "to_json_text"]

_ARG_LINE = re.compile(r"^\s{2,}(\w+)(?:\s*\([^)]*\))?:\s*(.+)$")


def docstring_parts(doc: str | None) -> tuple[str, dict[str, str]]:
    """Split a Google-style docstring into its description and per-argument texts."""
    if not doc:
        return "", {}
    doc = inspect.cleandoc(doc)
    head, _, rest = doc.partition("\nArgs:\n")
    descriptions: dict[str, str] = {}
    for line in rest.splitlines():
        if line and not line.startswith(" "):
            break  # the next section (Returns:, Raises:) starts
        m = _ARG_LINE.match(line)
        if m:
            descriptions[m.group(1)] = m.group(2).strip()
    return head.strip(), descriptions


def non_finite(value: Any, where: tuple[Any, ...] = ()) -> tuple[tuple[Any, ...], Any] | None:
    """Where the first NaN or infinity in ``value`` is, and the number; None if nowhere."""
    if isinstance(value, float):
        return None if math.isfinite(value) else (where, value)
    if isinstance(value, Decimal):
        return None if value.is_finite() else (where, value)
    if isinstance(value, Mapping):
        items: Iterable[tuple[Any, Any]] = value.items()
    elif isinstance(value, list | tuple | set | frozenset):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        found = non_finite(item, (*where, key))
        if found is not None:
            return found
    return None


def result_adapter(name: str, schema: Any) -> TypeAdapter[Any]:
    """A result schema from a type or pydantic model, or a ConfigError naming the tool."""
    try:
        return TypeAdapter(schema)
    except Exception as exc:
        raise ConfigError(
            f"tool {name!r}: cannot build a result schema from {schema!r} ({exc}); "
            "give a type or a pydantic model"
        ) from None


def returns_schema(fn: Callable[..., Any], name: str) -> TypeAdapter[Any] | None:
    """The schema of what ``fn`` returns, from its annotation; None if it says nothing."""
    try:
        hint = get_type_hints(fn).get("return", Any)
    except NameError as exc:
        raise ConfigError(
            f"tool {name!r}: cannot resolve the return annotation of {fn.__name__!r} ({exc}); "
            "import the type at module level"
        ) from None
    if hint is Any:
        return None
    return result_adapter(name, hint)


def to_json_text(value: Any) -> str:
    """How a result is shown to the model: JSON where possible, str() otherwise."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return str(value)
