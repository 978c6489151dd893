"""The `agentrt` command: inspect runs, decide approvals, resume runs, run the demo.

Commands work on an app given as module:attribute (like uvicorn): --app, the AGENTRT_APP
environment variable, or `app = "..."` under [agentrt] in ./agentrt.toml. The attribute is
an AgentRuntime, or a callable returning one (it is passed db= when --db is given).

Heavy imports (LangGraph, the app) happen inside the commands, so `agentrt --help` is quick.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import sys
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from agentrt.approvals import ApprovalRequest
    from agentrt.runtime import AgentRuntime, Run

__all__ = ["app", "load_runtime", "main"]

DEMO_APP = "agentrt.examples.refund_desk:build_runtime"

app = typer.Typer(
    name="agentrt",
    help="Inspect and drive agentrt runs: list, show, approve, reject, resume.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

AppOption = Annotated[
    str | None,
    typer.Option("--app", envvar="AGENTRT_APP", help="module:attribute of your AgentRuntime."),
]
DbOption = Annotated[
    str | None, typer.Option("--db", help="SQLite file; passed to an app factory as db=.")
]


class CliError(Exception):
    """A problem to report in one line, with exit status 2."""


def _app_from_toml() -> tuple[str | None, str | None]:
    path = Path("agentrt.toml")
    if not path.is_file():
        return None, None
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8")).get("agentrt", {})
    except tomllib.TOMLDecodeError as exc:
        raise CliError(f"agentrt.toml is not valid TOML: {exc}") from None
    return data.get("app"), data.get("db")


def load_runtime(spec: str | None, db: str | None) -> AgentRuntime:
    """Import module:attribute and return the AgentRuntime it names (or makes)."""
    from agentrt.runtime import AgentRuntime

    toml_app, toml_db = _app_from_toml()
    spec = spec or toml_app
    db = db or toml_db
    if not spec:
        raise CliError(
            "no app given: pass --app module:attribute, set AGENTRT_APP, or put "
            '`app = "module:attribute"` under [agentrt] in agentrt.toml '
            f"(the demo app is {DEMO_APP})"
        )
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise CliError(f"app {spec!r} is not of the form module:attribute, e.g. {DEMO_APP}")
    sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise CliError(f"cannot import module {module_name!r} of app {spec!r}: {exc}") from None
    finally:
        sys.path.pop(0)
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            raise CliError(f"module {module_name!r} has no attribute {attr!r} (app {spec!r})")
        target = getattr(target, part)
    if isinstance(target, AgentRuntime):
        if db is not None and Path(db).resolve() != Path(target.db).resolve():
            raise CliError(
                f"app {spec!r} is a runtime on {target.db!r}; --db {db!r} applies only to an "
                "app factory (a callable that takes db=)"
            )
        return target
    if callable(target):
        runtime = target(db=db) if db is not None else target()
        if isinstance(runtime, AgentRuntime):
            return runtime
        raise CliError(f"app factory {spec!r} returned {runtime!r}, not an AgentRuntime")
    raise CliError(f"app {spec!r} is {target!r}, neither an AgentRuntime nor a factory of one")


@contextmanager
def _runtime(spec: str | None, db: str | None) -> Iterator[AgentRuntime]:
    from agentrt.errors import AgentRuntimeError

    try:
        rt = load_runtime(spec, db)
    except (CliError, AgentRuntimeError) as exc:
        _fail(exc)
    try:
        yield rt
    except (CliError, AgentRuntimeError) as exc:
        # The one place a command's refusal becomes a line on stderr and an exit status.
        _fail(exc)
    finally:
        rt.close()


def _fail(exc: Exception) -> Any:
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2 if isinstance(exc, CliError) else 1)


def _age(since: float) -> str:
    seconds = max(0, int(time.time() - since))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _table(headers: list[str], rows: list[list[str]]) -> None:
    if not rows:
        typer.echo("(none)")
        return
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    typer.echo("  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in rows:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _short(value: Any, width: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= width else text[: width - 3] + "..."


def _print_run(run: Run) -> None:
    typer.echo(f"thread    {run.thread_id}")
    typer.echo(f"status    {run.status.value}")
    typer.echo(f"goal      {run.goal}")
    typer.echo(f"principal {run.principal.id} (tenant {run.principal.tenant})")
    u = run.usage
    typer.echo(
        f"usage     {u['steps']} steps, {u['tool_calls']} tool calls, "
        f"{u['input_tokens'] + u['output_tokens']} tokens, ${u['cost_usd']:.4f}, "
        f"{u['active_seconds']:.2f}s active"
    )
    if run.output:
        typer.echo(f"output    {run.output}")
    if run.error:
        typer.echo(f"error     {run.error}")
    if run.pending_approval:
        _print_request(run.pending_approval)


def _print_request(req: ApprovalRequest) -> None:
    typer.echo("waiting for approval:")
    typer.echo(f"  id            {req.id}")
    typer.echo(f"  action        {req.tool}({_short(req.args, 200)})")
    typer.echo(f"  rule          {req.rule_id}: {req.reason}")
    typer.echo(f"  required role {req.required_role or '(any)'}")


@app.command()
def runs(
    app_spec: AppOption = None,
    db: DbOption = None,
    status: Annotated[str | None, typer.Option(help="Only runs in this status.")] = None,
    tenant: Annotated[str | None, typer.Option(help="Only runs of this tenant.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
) -> None:
    """List runs, newest first."""
    with _runtime(app_spec, db) as rt:
        found = rt.runs(status, tenant=tenant, limit=limit)
        _table(
            ["thread", "status", "age", "steps", "goal"],
            [
                [
                    r.thread_id,
                    r.status.value,
                    _age(r.created_at),
                    str(r.usage["steps"]),
                    _short(r.goal, 50),
                ]
                for r in found
            ],
        )


@app.command()
def show(
    thread_id: Annotated[str, typer.Argument(help="The run's thread id.")],
    app_spec: AppOption = None,
    db: DbOption = None,
) -> None:
    """Show one run: status, usage, output, pending approval, and its event log."""
    with _runtime(app_spec, db) as rt:
        run = rt.get(thread_id)
        _print_run(run)
        typer.echo("events:")
        for event in rt.events(thread_id):
            typer.echo(f"  {_describe(event)}")


def _describe(event: Any) -> str:
    data, kind = event["data"], event["type"]
    if kind == "plan":
        calls = ", ".join(f"{a['tool']}({_short(a['args'], 40)})" for a in data["actions"])
        return f"plan #{data['revision']}: " + (calls or f"answer: {_short(data['content'])}")
    if kind == "policy":
        return f"policy {event['step_id']}: {data['outcome']} ({data['rule_id']}: {data['reason']})"
    if kind == "approval":
        return f"approval {event['step_id']}: {data['status']} by {data['decided_by']}"
    if kind == "observation":
        return (
            f"result {event['step_id']} {data['tool']}: [{data['kind']}] {_short(data['content'])}"
        )
    return f"finish: {data['status']}"


@app.command()
def approvals(
    app_spec: AppOption = None,
    db: DbOption = None,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's requests.")] = None,
    status: Annotated[str, typer.Option(help="pending, approved, rejected, ...")] = "pending",
    limit: Annotated[int, typer.Option(help="At most this many, oldest first.")] = 50,
) -> None:
    """The review queue: approval requests across all runs."""
    with _runtime(app_spec, db) as rt:
        found = rt.approvals(tenant=tenant, status=status, limit=limit)
        _table(
            ["id", "age", "tool", "args", "rule", "role", "thread"],
            [
                [
                    a.id,
                    _age(a.requested_at),
                    a.tool,
                    _short(a.args, 40),
                    a.rule_id or "",
                    a.required_role or "(any)",
                    a.thread_id,
                ]
                for a in found
            ],
        )


def _decide(
    app_spec: str | None,
    db: str | None,
    approval_id: str,
    outcome: str,
    name: str,
    roles: list[str],
    tenant: str | None,
    reason: str | None,
    args: str | None = None,
) -> None:
    from agentrt.approvals import Decision
    from agentrt.principal import Principal

    with _runtime(app_spec, db) as rt:
        payload: dict[str, Any] = {
            "approval_id": approval_id,
            "outcome": outcome,
            "by": Principal(name, roles=roles, tenant=tenant),
            "reason": reason,
        }
        if args is not None:
            try:
                payload["args"] = json.loads(args)
            except json.JSONDecodeError as exc:
                raise CliError(f"--args {args!r} is not JSON: {exc}") from None
        run = rt.decide(Decision.parse(payload))
        typer.echo(f"{outcome} recorded for {approval_id}; the run is now {run.status.value}")
        _print_run(run)


AsOption = Annotated[str, typer.Option("--as", help="Your principal id.")]
RoleOption = Annotated[
    list[str] | None, typer.Option("--role", help="A role you hold; repeat for several.")
]
TenantOption = Annotated[str | None, typer.Option(help="Your tenant.")]


@app.command()
def approve(
    approval_id: Annotated[str, typer.Argument(help="Id from `agentrt approvals`.")],
    name: AsOption,
    role: RoleOption = None,
    tenant: TenantOption = None,
    reason: Annotated[str | None, typer.Option(help="A note kept with the decision.")] = None,
    app_spec: AppOption = None,
    db: DbOption = None,
) -> None:
    """Approve a pending action; the run carries on."""
    _decide(app_spec, db, approval_id, "approve", name, role or [], tenant, reason)


@app.command()
def reject(
    approval_id: Annotated[str, typer.Argument(help="Id from `agentrt approvals`.")],
    name: AsOption,
    reason: Annotated[str, typer.Option(help="Why; the agent is told.")],
    role: RoleOption = None,
    tenant: TenantOption = None,
    app_spec: AppOption = None,
    db: DbOption = None,
) -> None:
    """Reject a pending action; the agent is told why and replans."""
    _decide(app_spec, db, approval_id, "reject", name, role or [], tenant, reason)


@app.command()
def edit(
    approval_id: Annotated[str, typer.Argument(help="Id from `agentrt approvals`.")],
    name: AsOption,
    args: Annotated[str, typer.Option(help="The arguments to run instead, as JSON.")],
    role: RoleOption = None,
    tenant: TenantOption = None,
    reason: Annotated[str | None, typer.Option(help="A note kept with the decision.")] = None,
    app_spec: AppOption = None,
    db: DbOption = None,
) -> None:
    """Run the action with other arguments; they pass through the policy again."""
    _decide(app_spec, db, approval_id, "edit", name, role or [], tenant, reason, args)


@app.command()
def resume(
    thread_id: Annotated[str, typer.Argument(help="The run's thread id.")],
    app_spec: AppOption = None,
    db: DbOption = None,
) -> None:
    """Carry a run on from its last checkpoint (after a crash, or after a decision)."""
    with _runtime(app_spec, db) as rt:
        _print_run(rt.resume(thread_id))


@app.command()
def demo(
    db: Annotated[str, typer.Option(help="SQLite file for the demo's runs.")] = "agentrt.db",
    decision: Annotated[
        str | None,
        typer.Option(help="approve or reject without asking (default: ask on a terminal)."),
    ] = None,
) -> None:
    """Run the refund desk on a scripted model, offline, up to its approval gate."""
    from agentrt.examples.refund_desk import APPROVER, GOAL, OPERATOR

    if decision not in (None, "approve", "reject"):
        _fail(CliError(f"--decision must be approve or reject, got {decision!r}"))
    with _runtime(DEMO_APP, db) as rt:
        typer.echo(f"goal: {GOAL}\nas:   {OPERATOR.id} (roles {list(OPERATOR.roles)})\n")
        run = rt.start(GOAL, principal=OPERATOR)
        for event in rt.events(run.thread_id):
            typer.echo(f"  {_describe(event)}")
        typer.echo("")
        _print_run(run)
        request = run.pending_approval
        if request is None:
            return
        if decision is None and sys.stdin.isatty():
            while decision not in ("approve", "reject"):
                decision = (
                    typer.prompt(f"\n{APPROVER.id} ({APPROVER.roles[0]}): approve or reject?")
                    .strip()
                    .lower()
                )
        if decision is None:
            base = f"{_command()} {{}} {request.id} --as {APPROVER.id} --role {APPROVER.roles[0]}"
            where = f"--app {DEMO_APP} --db {db}"
            typer.echo("\nNo terminal to ask on. To decide, run one of:")
            typer.echo(f"  {base.format('approve')} {where}")
            typer.echo(f"  {base.format('reject')} --reason 'not eligible' {where}")
            typer.echo(f"then see the run with:\n  {_command()} show {run.thread_id} {where}")
            return
        from agentrt.approvals import Decision

        if decision == "approve":
            chosen = Decision.approve(request.id, by=APPROVER)
        else:
            chosen = Decision.reject(request.id, by=APPROVER, reason="rejected in the demo")
        run = rt.decide(chosen)
        typer.echo(f"\n{decision} by {APPROVER.id}:")
        for event in rt.events(run.thread_id)[-4:]:
            typer.echo(f"  {_describe(event)}")
        typer.echo("")
        _print_run(run)


def _command() -> str:
    """How to call this command again: by name if it is on PATH, else as it was invoked."""
    invoked = Path(sys.argv[0])
    if invoked.name != "agentrt":
        return f"{Path(sys.executable).name} -m agentrt"
    found = shutil.which("agentrt")
    return "agentrt" if found and Path(found).resolve() == invoked.resolve() else str(invoked)


def main() -> None:
    """Entry point of the `agentrt` script."""
    try:
        app()
    except CliError as exc:
        _fail(exc)
