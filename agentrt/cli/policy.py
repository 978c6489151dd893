"""`agentrt policy check` and `agentrt policy explain`: a policy file before it goes live.

Both work on the file alone. Given an app (--app, AGENTRT_APP or agentrt.toml) they also
use its tools: `check` refuses rules naming tools the runtime lacks, and `explain` decides
with the tool's real effect, scopes and argument validation, as a run would.
"""

import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from agentrt.cli.common import CliError, _app_from_toml, app, fail, json_option, table
from agentrt.cli.options import AppOptions, grouped

if TYPE_CHECKING:
    from agentrt.policies import Policy, Rule
    from agentrt.runtime import AgentRuntime
    from agentrt.tools.contract import ToolSpec

policy_app = typer.Typer(
    help="Check a policy file and explain its decisions.", no_args_is_help=True
)
app.add_typer(policy_app, name="policy")

FileArgument = Annotated[str, typer.Argument(help="The policy YAML file.")]


@contextmanager
def _reported() -> Iterator[None]:
    """Refusals become one line on stderr: 2 for a bad option, 1 for a bad file or app."""
    from agentrt.errors import AgentRuntimeError

    try:
        yield
    except (CliError, AgentRuntimeError) as exc:
        fail(exc)


def _maybe_runtime(stack: ExitStack, app_options: AppOptions) -> "AgentRuntime | None":
    """The app's runtime if one is configured; None when the file is checked alone."""
    if not (app_options.app_spec or _app_from_toml()[0]):
        return None
    return stack.enter_context(app_options.runtime(create=True, app_only=True))


def _duration(seconds: float) -> str:
    """259200.0 -> '3d': the largest unit that says it exactly, as policy files write it."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


def _match_text(rule: "Rule") -> str:
    m = rule.match
    parts = [] if m.tools == ["*"] else [f"tools={','.join(m.tools)}"]
    if m.effects is not None:
        parts.append(f"effects={','.join(e.value for e in m.effects)}")
    for label, values in (
        ("scopes", m.scopes),
        ("roles", m.roles),
        ("tenants", m.tenants),
        ("servers", m.servers),
    ):
        if values is not None:
            parts.append(f"{label}={','.join(values)}")
    return " ".join(parts) or "*"


def _approval_text(rule: "Rule") -> str:
    spec = rule.approval
    if rule.decision != "require_approval":
        return ""
    if spec is None:
        return "anyone"
    terms = [f"role {spec.role}" if spec.role else "anyone"]
    if spec.four_eyes:
        terms.append("four eyes")
    if spec.expires_in is not None:
        terms.append(f"expires {_duration(spec.expires_in)}")
    return ", ".join(terms)


@policy_app.command()
@grouped
def check(path: FileArgument, app_options: AppOptions) -> None:
    """Validate a policy file and list its rules; with an app, check the tools it names."""
    from agentrt.policies import Policy

    with _reported(), ExitStack() as stack:
        policy = Policy.from_file(path)
        rt = _maybe_runtime(stack, app_options)
        if rt is not None:
            policy.check_tools(
                rt.tools.names(), servers=rt.tools.servers(), credentials=rt.tools.credentials()
            )
        typer.echo(
            f"{path}: policy {policy.name!r} version {policy.version}, default {policy.default}, "
            f"{len(policy.rules)} rules"
        )
        table(
            ["id", "decision", "approval", "match", "when", "reason"],
            [
                [
                    cr.rule.id,
                    cr.rule.decision,
                    _approval_text(cr.rule),
                    _match_text(cr.rule),
                    cr.rule.when or "-",
                    cr.rule.reason,
                ]
                for cr in policy.rules
            ],
        )
        if rt is None:
            typer.echo(
                "tools not checked: give the app (--app module:attribute) to check the tool "
                "names rules use against the runtime's tools"
            )
        else:
            typer.echo(f"every tool a rule names exists in the app ({len(rt.tools)} tools)")


def _stand_in(name: str, effect: str, scopes: list[str]) -> "ToolSpec":
    """A tool with this name, effect and scopes, for explaining without an app."""
    from agentrt.tools.contract import tool

    def stand_in() -> None:
        """Stands in for the app's tool; never called."""

    return tool(name=name, effect=effect, scopes=scopes)(stand_in)


@policy_app.command()
@grouped
def explain(
    path: FileArgument,
    tool_name: Annotated[str, typer.Option("--tool", help="The tool the action calls.")],
    args: Annotated[str, typer.Option(help="The action's arguments, as a JSON object.")] = "{}",
    principal: Annotated[str, typer.Option(help="Id of the principal the run acts for.")] = ("cli"),
    role: Annotated[
        list[str] | None,
        typer.Option("--role", metavar="ROLE", help="A role it holds; repeat for several."),
    ] = None,
    tenant: Annotated[str | None, typer.Option(help="Its tenant.")] = None,
    scope: Annotated[
        list[str] | None,
        typer.Option("--scope", metavar="SCOPE", help="A scope it grants; repeat for several."),
    ] = None,
    goal: Annotated[str, typer.Option(help="The run's goal, as `run.goal` sees it.")] = "",
    usage: Annotated[
        str | None, typer.Option(help="What the run has spent, as JSON (default: nothing).")
    ] = None,
    budget: Annotated[
        str | None, typer.Option(help="The run's limits, as JSON (default: the app's).")
    ] = None,
    effect: Annotated[
        str | None,
        typer.Option(help="Without an app: the tool's effect (read, write, irreversible)."),
    ] = None,
    tool_scope: Annotated[
        list[str] | None,
        typer.Option(
            "--tool-scope", metavar="SCOPE", help="Without an app: a scope the tool requires."
        ),
    ] = None,
    *,
    app_options: AppOptions,
) -> None:
    """Show which rules match an action, and why the decision comes out as it does."""
    from agentrt.budget import empty_usage
    from agentrt.policies import Policy
    from agentrt.principal import Principal
    from agentrt.tools.contract import ToolArgsError

    with _reported(), ExitStack() as stack:
        parsed_args = json_option("--args", args)
        if not isinstance(parsed_args, dict):
            raise CliError(f"--args must be a JSON object, got {args!r}")
        who = Principal(principal, roles=role or [], tenant=tenant, scopes=scope or [])
        spent = _usage_option(usage)
        limits = _budget_option(budget)
        policy = Policy.from_file(path)
        rt = _maybe_runtime(stack, app_options)
        spec: ToolSpec | None
        if rt is not None:
            if effect is not None or tool_scope:
                raise CliError(
                    "--effect and --tool-scope describe a tool when no app is given; "
                    "with an app, the tool is the app's"
                )
            spec = rt.tools.get(tool_name)
            limits = rt.budget.to_dict() if limits is None else limits
        elif effect is not None:
            spec = _stand_in(tool_name, effect, tool_scope or [])
        else:
            raise CliError(
                f"no app to take tool {tool_name!r} from: give --app module:attribute, "
                "or describe the tool with --effect read|write|irreversible (and --tool-scope S)"
            )
        if spec is not None and rt is not None:
            try:
                parsed_args = spec.validate_args(parsed_args)
            except ToolArgsError as exc:
                # What a run does: invalid arguments go back to the model, the policy unasked.
                typer.echo(f"decision invalid_args: {exc}")
                return
        explanation = policy.explain(
            spec,
            tool_name,
            parsed_args,
            who,
            run={"thread_id": "", "goal": goal, "step_id": "0.0"},
            usage={**empty_usage(), **(spent or {})},
            budget=limits,
        )
    _print_explanation(policy, path, spec, tool_name, parsed_args, who, explanation)


def _json_object(flag: str, text: str | None, example: str) -> dict[str, Any] | None:
    """The JSON object given as ``flag`` (None if it was not given)."""
    if text is None:
        return None
    value = json_option(flag, text)
    if not isinstance(value, dict):
        raise CliError(f"{flag} must be a JSON object, got {text!r}; e.g. {flag} '{example}'")
    return value


def _budget_option(text: str | None) -> dict[str, Any] | None:
    """--budget as the run's limits, each a field Budget has with a value it takes: a typo'd
    key would otherwise explain the action as if that limit were not set."""
    from agentrt.budget import Budget
    from agentrt.errors import ConfigError

    limits = _json_object("--budget", text, '{"max_cost_usd": 5}')
    if limits is None:
        return None
    _known_keys("--budget", limits, list(Budget.__dataclass_fields__))
    try:
        Budget.from_dict(limits)
    except ConfigError as exc:
        raise CliError(f"--budget {text!r}: {exc}") from None
    return limits


def _usage_option(text: str | None) -> dict[str, Any] | None:
    """--usage as what the run has spent: each key one of a run's usage figures, each value
    a number."""
    from agentrt.state import Usage

    spent = _json_object("--usage", text, '{"cost_usd": 1.5, "tool_calls": 3}')
    if spent is None:
        return None
    _known_keys("--usage", spent, sorted(Usage.__required_keys__ | Usage.__optional_keys__))
    for key, value in spent.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise CliError(f"--usage {key!r} must be a number, got {value!r}")
    return spent


def _known_keys(flag: str, given: dict[str, Any], known: list[str]) -> None:
    """CliError naming the keys of ``given`` that are not in ``known``, and the known ones."""
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise CliError(f"{flag} has unknown keys {unknown!r}; its keys are {', '.join(known)}")


def _print_explanation(
    policy: "Policy",
    path: str,
    spec: "ToolSpec | None",
    tool_name: str,
    args: dict[str, Any],
    who: Any,
    explanation: Any,
) -> None:
    decision = explanation.decision
    typer.echo(f"policy   {policy.name}@{policy.version} ({path}), default {policy.default}")
    typer.echo(f"action   {tool_name}({json.dumps(args, sort_keys=True)})")
    typer.echo(
        f"by       {who.id} (roles {list(who.roles)}, tenant {who.tenant}, "
        f"scopes {list(who.scopes)})"
    )
    if spec is not None:
        typer.echo(f"tool     {spec.effect.value}, requires scopes {list(spec.scopes)}")
    if explanation.checks:
        typer.echo("rules:")
        table(
            ["", "rule", "says", "why"],
            [
                [
                    "match" if c.matched else "-",
                    c.rule.id,
                    c.rule.decision,
                    c.why + (f": {c.rule.when}" if c.rule.when and "`when`" in c.why else ""),
                ]
                for c in explanation.checks
            ],
        )
    else:
        typer.echo("rules:   not consulted (the action is refused before any rule)")
    typer.echo(f"decision {decision.outcome}")
    typer.echo(f"  by     {decision.rule_id or '(no rule)'}: {decision.reason}")
    typer.echo(f"  matched {', '.join(decision.matched) or 'none'}")
    if decision.outcome == "require_approval":
        expires = _duration(decision.expires_in) if decision.expires_in is not None else "never"
        typer.echo(
            f"  approver {_roles(decision.required_roles)}, "
            f"four eyes {'yes' if decision.four_eyes else 'no'}, expires {expires}"
        )


def _roles(roles: tuple[str, ...]) -> str:
    """'role X', 'roles X and Y' (one approver holding both), or 'role (any)'."""
    if len(roles) > 1:
        return f"roles {' and '.join(roles)} (all of them)"
    return f"role {roles[0] if roles else '(any)'}"
