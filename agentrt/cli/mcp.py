"""`agentrt mcp`: agentrt itself as an MCP server for reviewers, over stdio.

An MCP client (a desktop assistant, an IDE) becomes a reviewer's console: it lists the
pending approval requests, shows one, and approves, rejects or edits it, as the principal
the API key maps to. The checks are the HTTP API's: the key is looked up on every call (a
revoked key stops working at once), the key's tenant bounds what it sees (another
tenant's request is answered as one that does not exist), and every decision goes through
``rt.decide``'s checks (role, four eyes, expiry, the arguments' digest, already decided).

stdout is the protocol's: nothing else is printed once it serves; logs go to stderr.
"""

from typing import TYPE_CHECKING, Annotated, Any

import typer

from agentrt.cli.common import CliError, app, fail
from agentrt.cli.options import AppOptions, grouped

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from agentrt.approvals import ApprovalRequest
    from agentrt.principal import Principal
    from agentrt.runtime import AgentRuntime

INSTRUCTIONS = (
    "agentrt's review queue. list_pending_approvals shows what waits for a person; "
    "show_approval gives one request in full (pass its args_digest to a decision to decide "
    "exactly what you saw); approve, reject (with a reason) or edit (new arguments, checked "
    "again by the policy) decide it as the API key's principal."
)


@app.command("mcp")
@grouped
def serve_mcp(
    key: Annotated[
        str | None,
        typer.Option(
            "--key",
            envvar="AGENTRT_API_KEY",
            help="The reviewer's API key (agentrt keys create); better given as AGENTRT_API_KEY.",
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume/--no-resume",
            help="Carry a decided run on here (default), or leave it to a worker.",
        ),
    ] = True,
    *,
    app_options: AppOptions,
) -> None:
    """Serve the review queue as an MCP server on stdio, as the principal of an API key."""
    from agentrt.errors import AgentRuntimeError

    if not key:
        fail(
            CliError(
                "agentrt mcp needs the reviewer's API key: set AGENTRT_API_KEY (or --key); "
                "make one with `agentrt keys create`"
            )
        )
    assert key is not None
    try:
        with app_options.runtime(create=False) as rt:
            found = rt.keys.authenticate(key)
            if found is None:
                raise CliError(
                    # The store's location: the URL with its password hidden (rt.db has it).
                    f"API key {_hint(key)!r} is unknown or revoked in {rt.store.location!r}; "
                    "ask for a new one (`agentrt keys create`)"
                )
            review_server(rt, key, resume=resume).run("stdio")
    except (CliError, AgentRuntimeError) as exc:
        fail(exc)


def review_server(rt: "AgentRuntime", key: str, *, resume: bool = True) -> "MCPServer":
    """The MCP server: the review queue of ``key``'s tenant, decided as its principal."""
    import asyncio  # here, not at the top: `agentrt --help` has no use for it

    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp.types import ToolAnnotations

    from agentrt.approvals import Decision
    from agentrt.errors import AgentRuntimeError, InvalidDecision

    server = MCPServer("agentrt-review", instructions=INSTRUCTIONS)
    reads = ToolAnnotations(read_only_hint=True, open_world_hint=False)
    decides = ToolAnnotations(
        read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
    )

    def caller() -> "Principal":
        found = rt.keys.authenticate(key)
        if found is None:
            raise ToolError("this API key is unknown or revoked; ask for a new one")
        return found.principal

    def request_of(who: "Principal", approval_id: str) -> "ApprovalRequest":
        try:
            found = rt.approval(approval_id)
        except InvalidDecision:
            found = None
        if found is None or found.tenant != who.tenant:
            raise ToolError(
                f"no approval request with id {approval_id!r} in your tenant; list the pending "
                "ones with list_pending_approvals"
            )
        return found

    def decide(approval_id: str, outcome: str, **fields: Any) -> dict[str, Any]:
        who = caller()
        request = request_of(who, approval_id)
        given = {k: v for k, v in fields.items() if v is not None}
        try:
            decision = Decision.parse(
                {"approval_id": request.id, "outcome": outcome, "by": who, **given}
            )
            run = rt.decide(decision, resume=resume)
        except AgentRuntimeError as exc:
            raise ToolError(str(exc)) from None
        return {
            "approval": shown(rt, rt.approval(request.id)),
            "run": {"thread_id": run.thread_id, "status": run.status.value},
        }

    @server.tool(annotations=reads)
    async def list_pending_approvals(
        role: str | None = None, thread_id: str | None = None, limit: int = 50
    ) -> list[dict[str, Any]]:
        """The pending approval requests of your tenant, oldest first (at most ``limit``);
        ``role`` keeps those needing that role, ``thread_id`` those of one run."""

        def listed() -> list[dict[str, Any]]:
            who = caller()
            page = rt.approvals(
                "pending",
                tenant=who.tenant,
                role=role,
                thread_id=thread_id,
                limit=max(1, min(limit, 1000)),
            )
            return [shown(rt, r) for r in page]

        return await asyncio.to_thread(listed)

    @server.tool(annotations=reads)
    async def show_approval(approval_id: str) -> dict[str, Any]:
        """One approval request of your tenant, whatever its status."""
        return await asyncio.to_thread(lambda: shown(rt, request_of(caller(), approval_id)))

    @server.tool(annotations=decides)
    async def approve(
        approval_id: str, reason: str | None = None, args_digest: str | None = None
    ) -> dict[str, Any]:
        """Approve the request as it stands; with ``args_digest`` (from show_approval) only
        if its arguments are still those."""
        return await asyncio.to_thread(
            decide, approval_id, "approve", reason=reason, args_digest=args_digest
        )

    @server.tool(annotations=decides)
    async def reject(
        approval_id: str, reason: str, args_digest: str | None = None
    ) -> dict[str, Any]:
        """Reject the request, saying why (the run's planner reads the reason)."""
        return await asyncio.to_thread(
            decide, approval_id, "reject", reason=reason, args_digest=args_digest
        )

    @server.tool(annotations=decides)
    async def edit(
        approval_id: str,
        args: dict[str, Any],
        reason: str | None = None,
        args_digest: str | None = None,
    ) -> dict[str, Any]:
        """Run the action with these arguments instead; the edit is checked against the
        tool's schema and goes through the policy again."""
        return await asyncio.to_thread(
            decide, approval_id, "edit", args=args, reason=reason, args_digest=args_digest
        )

    return server


def shown(rt: "AgentRuntime", request: "ApprovalRequest") -> dict[str, Any]:
    """A request as a reviewer sees it: its arguments and words through the masking path."""
    from agentrt.approvals.display import shown_args, shown_request

    said = shown_request(request, rt.tools, redactor=rt.redactor)
    return {
        "id": request.id,
        "kind": request.kind,
        "status": request.status.value,
        "thread_id": request.thread_id,
        "step_id": request.step_id,
        "tool": request.tool,
        "args": shown_args(request, rt.tools, redactor=rt.redactor),
        "args_digest": request.args_digest,
        "edited_args": None
        if request.edited_args is None
        else shown_args(request, rt.tools, request.edited_args, redactor=rt.redactor),
        "rule_id": request.rule_id,
        "reason": said.reason,
        "required_roles": list(request.required_roles),
        "four_eyes": request.four_eyes,
        "requested_by": request.requested_by,
        "requested_at": request.requested_at,
        "expires_at": request.expires_at,
        "decided_by": request.decided_by,
        "decided_at": request.decided_at,
        "comment": said.comment,
    }


def _hint(key: str) -> str:
    """Enough of a key to recognise it in a message, never enough to use it."""
    return key[:16] + "..." if len(key) > 16 else key
