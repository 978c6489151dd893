"""What a person typed into the review page's decide forms, read as a decision's parts.

A field that does not read (JSON that is not JSON, a limit that is not a number) is a
``Refused``: the page shows its message, with the form as it was filled in.
"""

from __future__ import annotations

import json
import math
from typing import Any

from pydantic import BaseModel

__all__ = ["DecisionForm", "Refused", "json_field", "number", "plain"]


class DecisionForm(BaseModel):
    """A decide form as the browser posts it (checked by DecisionIn after)."""

    outcome: str
    reason: str = ""
    args: str = ""
    """For edit: the arguments as JSON text."""
    result: str = ""
    """For resolve: what the tool returned, as JSON text."""
    to: str = ""
    """For raise_limit: the limit's new value."""
    args_digest: str = ""
    """For approve: the digest of the arguments the person saw."""
    back: str = "/ui"
    """The page the form is on, where the answer goes."""


class Refused(Exception):
    """A decision refused before or by the runtime: its HTTP status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def json_field(text: str, what_is: str, example: str) -> Any:
    """JSON typed into a form; ``what_is`` names it for the refusal ("the result is")."""
    if not text.strip():
        raise Refused(422, f"{what_is} empty; write it as JSON, e.g. {example}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise Refused(
            422,
            f"{what_is} not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); "
            f"write it as JSON, e.g. {example}",
        ) from None


def number(text: str) -> float:
    """A new limit typed into a form."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise Refused(422, f"the new limit must be a number, got {text.strip()!r}")
    return value


def plain(error: Any) -> str:
    """One pydantic validation error in words."""
    where = ".".join(str(p) for p in error["loc"])
    return f"{where}: {error['msg']}" if where else str(error["msg"])
