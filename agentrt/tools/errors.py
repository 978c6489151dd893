"""What a tool call can raise before it has a result: the tool's own failure, and arguments
that do not fit its schema.

Both the contract (agentrt.tools.contract) and the JSON-Schema check of arguments
(agentrt.tools.jsonargs) raise them; neither needs the other to do so.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any, Literal

from agentrt.redaction import MIN_KNOWN, Redactor
from agentrt.tracing.shown import shown

__all__ = ["OutcomeUnknown", "ToolArgsError", "ToolError"]


class ToolError(Exception):
    """Raised by a tool to report a failure the planner should see, with its kind.

    kind="transient" says the call did not act and may be tried again (it is retried per
    the tool's RetryPolicy); "permanent" says trying again will not help.
    """

    def __init__(self, message: str, *, kind: Literal["transient", "permanent"] = "permanent"):
        if kind not in ("transient", "permanent"):
            raise ValueError(f"ToolError kind must be 'transient' or 'permanent', got {kind!r}")
        self.kind: Literal["transient", "permanent"] = kind
        super().__init__(message)


class OutcomeUnknown(TimeoutError):
    """A call whose outcome cannot be known: the request went out and the answer never came
    back (the server it went to died, or the connection dropped, mid-call).

    It counts as a timeout, the other case of an answer that never came: a read, or an
    idempotent tool, is called again; for any other tool the effect is in doubt, and the
    ledger asks a person (the reconcile gate) rather than calling it twice.
    """


class ToolArgsError(Exception):
    """Arguments that fail the tool's schema. Becomes an invalid_args observation.

    Its message quotes each bad value as the one masking path shows it
    (``agentrt.tracing.shown``), with the tool's ``sensitive`` fields: a value at a
    sensitive field is not quoted at all, and a value that holds sensitive fields (the
    whole arguments, when one is missing) is quoted with them masked. Quoted as it was, a
    secret cut to length or escaped by repr would pass the masking of what is shown later,
    which cuts out a secret it finds whole.
    """

    def __init__(
        self, tool: str, errors: list[dict[str, Any]], *, sensitive: Collection[str] = ()
    ) -> None:
        self.tool = tool
        self.errors = errors
        self.sensitive = tuple(sensitive)
        parts = [_described(err, self.sensitive) for err in errors[:5]]
        more = f" and {len(errors) - 5} more" if len(errors) > 5 else ""
        super().__init__(
            f"arguments for tool {tool!r} do not match its schema: "
            + "; ".join(parts)
            + more
            + ". Call it again with arguments that match the schema."
        )


_MASK = Redactor()
"""Masks what an error quotes: the default Redactor's mode, "mask", writes a marker every
Redactor leaves as it is; a digest (mode "hash") with a salt anyone knows could be guessed."""


def _described(error: Mapping[str, Any], sensitive: Collection[str]) -> str:
    """One schema error in words, its value quoted only as a person may see it."""
    path = tuple(error.get("loc", ()))
    loc = _clip(".".join(str(p) for p in path) or "(arguments)", 60)
    value = error.get("input")
    if any(_MASK.sensitive_key(p, sensitive) for p in path if isinstance(p, str)):
        # At a sensitive field the value is the secret itself: masked whole, never quoted.
        masked = shown({"input": value}, _MASK, sensitive=["input"])["input"]
        message = _unquoted(str(error.get("msg")), value, masked)
        return f"{loc}: {message} (the value is not shown: the field is sensitive)"
    masked = shown(value, _MASK, sensitive=sensitive)
    message = _unquoted(str(error.get("msg")), value, masked)
    return f"{loc}: {message} (got {_clip(repr(masked), 60)})"


def _unquoted(message: str, value: Any, masked: Any) -> str:
    """``message`` with its quotes of ``value`` (a JSON Schema message may hold one, as
    "False schema does not allow 'abc'") made those of ``masked``."""
    if masked == value:
        return message
    for quoted, instead in ((repr(value), repr(masked)), (str(value), str(masked))):
        if len(quoted) >= MIN_KNOWN:
            message = message.replace(quoted, instead)
    return message


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."
