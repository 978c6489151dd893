"""Approval requests as a person sees them: through the one masking path."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import replace
from typing import Any, Protocol

from agentrt.approvals.model import ApprovalRequest
from agentrt.redaction import Redactor
from agentrt.tracing.shown import secret_values, shown

__all__ = [
    "Tools",
    "changed_args",
    "masked",
    "shown_about",
    "shown_args",
    "shown_request",
    "unmasked",
]


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


def shown_about(
    request: ApprovalRequest,
    tools: Tools,
    text: str,
    *,
    args: Any = None,
    redactor: Redactor | None = None,
    known: Collection[Any] = (),
) -> str:
    """``text`` about ``request`` (a refused decision's message, its reason) as a person may
    see it: the secret values its sensitive arguments hold, those of ``args`` (say, an
    edit's, as JSON text or a dict) and the ``known`` ones (its run's log's) cut out wherever
    it repeats them. A message may quote arguments: the edit's, where a masked value was
    already swapped for the run's own."""
    sensitive = () if request.kind == "budget" else tools.sensitive_of(request.tool)
    r = redactor or Redactor()
    known = [
        *known,
        *secret_values(request.args, r, sensitive),
        *secret_values(args, r, sensitive),
    ]
    return str(shown(text, redactor, sensitive=sensitive, known=known))


def shown_request(
    request: ApprovalRequest,
    tools: Tools,
    *,
    redactor: Redactor | None = None,
    known: Collection[Any] = (),
) -> ApprovalRequest:
    """``request`` with its words as a person may see them wherever it is shown or sent:
    why it was asked (a reconcile's reason quotes the tool's error, which may repeat a
    sensitive argument), the decider's comment and why a later message superseded it,
    through ``shown_about`` with its edited arguments' secrets too. Its arguments stay
    exact: show them with ``shown_args``."""

    def said(text: str) -> str:
        return shown_about(
            request, tools, text, args=request.edited_args, redactor=redactor, known=known
        )

    return replace(
        request,
        reason=said(request.reason),
        comment=None if request.comment is None else said(request.comment),
        # The runtime's own words today ("superseded by message #2"), shown as the others
        # are all the same: a surface never has to know which words may quote a secret.
        superseded=None if request.superseded is None else said(request.superseded),
    )


def unmasked(edited: Any, original: Any, seen: Any) -> Any:
    """An edit as meant, from ``edited`` (made from ``seen``, the ``original`` arguments as
    ``shown_args`` showed them): a value left exactly as it was shown (masked, or with a
    secret cut out of its text) is the run's own value, and a field the view dropped stays.
    A person edits what they were shown; the secret they could not see is not theirs to
    replace with its mask."""
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


def changed_args(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """The names of the arguments an edit changed (added, removed or given another value),
    in the order of the original's then the new ones; compared on the values that run."""
    missing = object()
    names = dict.fromkeys([*before, *after])
    return [n for n in names if before.get(n, missing) != after.get(n, missing)]
