"""Approval requests as a person sees them: through the one masking path."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from agentrt.approvals.model import ApprovalRequest
from agentrt.tools.registry import ToolRegistry
from agentrt.tracing.redact import Redactor
from agentrt.tracing.shown import secret_values, shown

__all__ = ["masked", "shown_args"]


def masked(value: Any, sensitive: Iterable[str], redactor: Redactor | None = None) -> Any:
    """``value`` as a person may see it: the fields named in ``sensitive`` masked at any
    depth, and all else the Redactor finds (``agentrt.tracing.shown``, the one path)."""
    return shown(value, redactor, sensitive=tuple(sensitive))


def shown_args(
    request: ApprovalRequest,
    tools: ToolRegistry,
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
    spec = tools.get(request.tool)
    if spec is None:
        return f"(hidden: this app has no tool {request.tool!r})"
    known = secret_values(request.args, redactor or Redactor(), spec.sensitive)
    return shown(value, redactor, sensitive=spec.sensitive, known=known)
