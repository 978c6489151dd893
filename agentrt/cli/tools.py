"""`agentrt tools`: every tool an app's runtime offers, and for a principal, what decides it.

The runtime is opened as the app makes it (its MCP servers started and listed), so the list
is what a planner would be offered now: each tool's effect, whether calling it twice is
safe, the scopes it needs and where it comes from (a function, LangChain, a JSON-Schema
tool, an MCP server). Given a principal (--principal, --role, --tenant, --scope), each
tool also gets the decision the app's policy would take on a call of it and the rule that
takes it.
"""

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from agentrt.cli.common import CliError, app, fail, table
from agentrt.cli.options import AppOptions, grouped

if TYPE_CHECKING:
    from agentrt.principal import Principal
    from agentrt.runtime import AgentRuntime
    from agentrt.tools.contract import ToolSpec


def source_of(spec: "ToolSpec") -> str:
    """Where a tool comes from, in the list's words: "function", "langchain", "mcp:git"."""
    return f"mcp:{spec.server}" if spec.server else spec.source


def decision_of(rt: "AgentRuntime", spec: "ToolSpec", who: "Principal") -> dict[str, Any]:
    """What the policy would say to ``who`` calling ``spec``, with no arguments known.

    Rules whose ``when`` looks at the call are listed apart: with real arguments they may
    decide otherwise.
    """
    from agentrt.budget import empty_usage

    explanation = rt.policy.explain(
        spec,
        spec.name,
        {},
        who,
        run={"thread_id": "", "goal": "", "step_id": "0.0"},
        usage=empty_usage(),
        budget=rt.budget.to_dict(),
    )
    decision = explanation.decision
    conditional = [
        c.rule.id
        for c in explanation.checks
        if c.rule.when is not None and (c.matched or "`when`" in c.why)
    ]
    return {
        "decision": decision.outcome,
        "rule": decision.rule_id,
        "reason": decision.reason,
        "approvers": list(decision.required_roles),
        "depends_on_args": conditional,
    }


def _rule_text(found: dict[str, Any]) -> str:
    if found["rule"] is not None:
        text = str(found["rule"])
    elif found["reason"].startswith("no rule matched"):
        text = "(default)"
    else:
        text = "(scopes)"
    if found["depends_on_args"]:
        text += f" [when: {', '.join(found['depends_on_args'])}]"
    return text


@app.command("tools")
@grouped
def list_tools(
    principal: Annotated[
        str | None,
        typer.Option(help="Decide each tool for this principal id (with --role, --tenant, ...)."),
    ] = None,
    role: Annotated[
        list[str] | None,
        typer.Option("--role", metavar="ROLE", help="A role it holds; repeat for several."),
    ] = None,
    tenant: Annotated[str | None, typer.Option(help="Its tenant.")] = None,
    scope: Annotated[
        list[str] | None,
        typer.Option("--scope", metavar="SCOPE", help="A scope it grants; repeat for several."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object a tool.")] = False,
    *,
    app_options: AppOptions,
) -> None:
    """List every tool the app offers: effect, scopes, source; for a principal, the rule
    that would decide a call of it."""
    from agentrt.errors import AgentRuntimeError
    from agentrt.principal import Principal

    who = None
    if principal is not None or role or tenant is not None or scope:
        who = Principal(principal or "cli", roles=role or [], tenant=tenant, scopes=scope or [])
    try:
        with app_options.runtime(create=True, app_only=True) as rt:
            rows = [_row(rt, spec, who) for spec in rt.tools]
            policy = f"{rt.policy.name}@{rt.policy.version}"
    except (CliError, AgentRuntimeError) as exc:
        fail(exc)
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row, sort_keys=True))
        return
    if not rows:
        typer.echo("the app offers no tools")
        return
    headers = ["tool", "effect", "idempotent", "scopes", "source"]
    if who is not None:
        headers += ["offered", "decision", "rule"]
    table(headers, [_cells(row, who is not None) for row in rows])
    if who is not None:
        typer.echo(
            f"decided for {who.id} (roles {list(who.roles)}, tenant {who.tenant}, scopes "
            f"{list(who.scopes)}) by policy {policy}, with no arguments known"
        )


def _row(rt: "AgentRuntime", spec: "ToolSpec", who: "Principal | None") -> dict[str, Any]:
    row: dict[str, Any] = {
        "tool": spec.name,
        "effect": spec.effect.value,
        "idempotent": spec.idempotent,
        "scopes": list(spec.scopes),
        "source": source_of(spec),
    }
    if who is not None:
        row["offered"] = set(spec.scopes) <= set(who.scopes)
        row |= decision_of(rt, spec, who)
    return row


def _cells(row: dict[str, Any], decided: bool) -> list[str]:
    cells = [
        row["tool"],
        row["effect"],
        "yes" if row["idempotent"] else "no",
        ",".join(row["scopes"]) or "-",
        row["source"],
    ]
    if decided:
        approvers = f" ({' and '.join(row['approvers'])})" if row["approvers"] else ""
        cells += [
            "yes" if row["offered"] else "no",
            row["decision"] + approvers,
            _rule_text(row),
        ]
    return cells
