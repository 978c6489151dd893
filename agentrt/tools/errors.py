"""What a tool call can raise before it has a result: the tool's own failure, and arguments
that do not fit its schema.

Both the contract (agentrt.tools.contract) and the JSON-Schema check of arguments
(agentrt.tools.jsonargs) raise them; neither needs the other to do so.
"""

from __future__ import annotations

from typing import Any, Literal

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
    """Arguments that fail the tool's schema. Becomes an invalid_args observation."""

    def __init__(self, tool: str, errors: list[dict[str, Any]]) -> None:
        self.tool = tool
        self.errors = errors
        parts = []
        for err in errors[:5]:
            loc = _clip(".".join(str(p) for p in err.get("loc", ())) or "(arguments)", 60)
            value = err.get("input")
            shown = _clip(repr(value), 60)
            parts.append(f"{loc}: {err.get('msg')} (got {shown})")
        more = f" and {len(errors) - 5} more" if len(errors) > 5 else ""
        super().__init__(
            f"arguments for tool {tool!r} do not match its schema: "
            + "; ".join(parts)
            + more
            + ". Call it again with arguments that match the schema."
        )


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."
