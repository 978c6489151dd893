"""What a person typed into the review page's decide forms, read as a decision's parts.

A field that does not read (JSON that is not JSON, a limit that is not a number) is a
``Refused``: the page shows its message, with the form as it was filled in.
"""

from __future__ import annotations

import json
import math
from typing import Any

from pydantic import BaseModel

__all__ = ["DecisionForm", "Refused", "json_field", "number", "plain", "unmasked"]


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


def unmasked(edited: Any, original: Any, seen: Any) -> Any:
    """The edit as meant: a value left exactly as it was shown (masked, or with a secret cut
    out of its text) is the run's own value, and a field the view dropped stays."""
    if edited == seen:
        return original
    if isinstance(edited, dict) and isinstance(original, dict) and isinstance(seen, dict):
        # A name that held a secret (an email used as a key) is shown masked: the field shown
        # under it is the run's field in the same place. A view that dropped nothing keeps
        # every field in its place, so only then are names paired by place.
        own = dict(zip(seen, original, strict=True)) if len(seen) == len(original) else {}
        shown_as = {name: masked for masked, name in own.items()}
        out: dict[Any, Any] = {}
        for k, v in edited.items():
            name = own.get(k, k)
            out[name] = unmasked(v, original[name], seen.get(k)) if name in original else v
        return out | {
            k: v for k, v in original.items() if shown_as.get(k, k) not in seen and k not in out
        }
    lists = all(isinstance(x, list) for x in (edited, original, seen))
    if lists and len(edited) == len(original) == len(seen):
        return [unmasked(*parts) for parts in zip(edited, original, seen, strict=True)]
    return edited
