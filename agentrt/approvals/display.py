"""Approval requests as a person sees them: through the one masking path."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any, Protocol

from agentrt.approvals.model import ApprovalRequest
from agentrt.redaction import Redactor
from agentrt.tracing.shown import secret_values, shown

__all__ = ["Tools", "masked", "shown_args"]


class Tools(Protocol):
    """What display asks of the app's tools (a ToolRegistry): which it has, and which of
    their fields are sensitive."""

    def names(self) -> list[str]: ...

    def sensitive_of(self, name: str) -> Collection[str]: ...


def masked(value: Any, sensitive: Iterable[str], redactor: Redactor | None = None) -> Any:
    """``value`` as a person may see it: the fields named in ``sensitive`` masked at any
    depth, and all else the Redactor finds (``agentrt.tracing.shown``, the one path)."""
    return shown(value, redactor, sensitive=tuple(sensitive))


def shown_args(
    request: ApprovalRequest,
    tools: Tools,
    args: Any = None,
    *,
    redactor: Redactor | None = None,
) -> Any:
    """A request's arguments (or ``args``, say its edited ones) for a person to read, as
    ``masked`` shows them with the tool's sensitive fields; a value the request's own
    sensitive arguments hold is masked wherever ``args`` repeat it. A tool the app no
    longer has cannot say which fields are sensitive: nothing is shown."""
    value = request.args if args is None else args
    if request.kind == "budget":
        return shown(value, redactor)  # limits and usage: no tool fields to hide
    if request.tool not in tools.names():
        return f"(hidden: this app has no tool {request.tool!r})"
    sensitive = tools.sensitive_of(request.tool)
    known = secret_values(request.args, redactor or Redactor(), sensitive)
    return shown(value, redactor, sensitive=sensitive, known=known)
