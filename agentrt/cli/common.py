"""What every `agentrt` command shares: the app option, loading the runtime, one error handler,
and plain-text tables."""

import importlib
import inspect
import json
import os
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from agentrt.cli.listed import app
from agentrt.cli.usage import CliError
from agentrt.cli.where import app_from_toml, check_database
from agentrt.readable import moment, usd

if TYPE_CHECKING:
    from agentrt.approvals import ApprovalRequest
    from agentrt.runs.messages import ThreadMessage
    from agentrt.runtime import AgentRuntime, Run

__all__ = [
    "DEMO_APP",
    "AppOption",
    "CliError",
    "DbOption",
    "age",
    "app",
    "check_database",
    "database_runtime",
    "describe_budget",
    "fail",
    "json_option",
    "load_runtime",
    "message_line",
    "not_text",
    "print_request",
    "print_run",
    "raised",
    "rule_of",
    "runtime_from",
    "short",
    "shown_args",
    "shown_request",
    "table",
]

DEMO_APP = "agentrt.examples.refund_desk:build_runtime"

_app_from_toml = app_from_toml  # as cli/policy.py knows it


AppOption = Annotated[
    str | None,
    typer.Option("--app", envvar="AGENTRT_APP", help="module:attribute of your AgentRuntime."),
]
DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar="AGENTRT_DB",
        help="SQLite file or postgresql:// URL; passed to an app factory as db=. Commands "
        "that only read and write its tables (keys, runs, show, approvals, trace) need no "
        "app with it.",
    ),
]


def load_runtime(
    spec: str | None,
    db: str | None,
    *,
    db_only: bool = False,
    create: bool = True,
    scratch: str | None = None,
) -> "AgentRuntime":
    """Import module:attribute and return the AgentRuntime it names (or makes).

    ``db_only``: with a database and no app, the runtime of the database alone (see
    database_runtime). ``create``: False refuses a database path that does not exist (given,
    or an app factory's default db=), rather than making a new empty file there.
    ``scratch``: with no database given, the database an app factory is made on (a command
    that reads only the app: its tools and policy), instead of the factory's default file
    in the working directory.
    """
    import sqlite3

    from agentrt.errors import AgentRuntimeError
    from agentrt.runtime import AgentRuntime

    # What agentrt says itself (a refusal, a database it cannot open) stays as it is; what
    # the app's own code raises is one line, as every other start-up failure is.
    said = (CliError, AgentRuntimeError, sqlite3.DatabaseError)
    toml_app, toml_db = _app_from_toml()
    spec = spec or toml_app
    db = db or toml_db
    if db is not None:
        check_database(db, create=create)
    if not spec and db_only and db:
        return database_runtime(db)
    if not spec:
        raise CliError(
            "no app given: pass --app module:attribute, set AGENTRT_APP, or put "
            '`app = "module:attribute"` under [agentrt] in agentrt.toml '
            f"(the demo app is {DEMO_APP})"
            + ("; or give the database alone with --db FILE" if db_only else "")
        )
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise CliError(f"app {spec!r} is not of the form module:attribute, e.g. {DEMO_APP}")
    sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise CliError(f"cannot import module {module_name!r} of app {spec!r}: {exc}") from None
    except said:
        raise
    except Exception as exc:
        raise CliError(f"module {module_name!r} of app {spec!r} failed: {raised(exc)}") from None
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
                f"app {spec!r} is a runtime on {target.store.location!r}; --db applies only to an "
                "app factory (a callable that takes db=)"
            )
        return target
    if callable(target):
        db = db if db is not None else scratch
        _check_factory(spec, target, db, create=create)
        try:
            runtime = target(db=db) if db is not None else target()
        except said:
            raise
        except Exception as exc:
            raise CliError(f"app factory {spec!r} failed: {raised(exc)}") from None
        if isinstance(runtime, AgentRuntime):
            return runtime
        raise CliError(f"app factory {spec!r} returned {runtime!r}, not an AgentRuntime")
    raise CliError(f"app {spec!r} is {target!r}, neither an AgentRuntime nor a factory of one")


def raised(exc: BaseException) -> str:
    """An exception the app's code raised, in one line: its type, what it says, and the
    app's line it came from (the innermost frame outside Python's and installed packages'
    files, where there is one)."""
    import sysconfig

    libraries = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    frames = traceback.extract_tb(exc.__traceback__)
    own = [
        f for f in frames if not f.filename.startswith(("<", *libraries)) and f.lineno is not None
    ]
    where = (own or frames)[-1:]
    at = f" (raised at {where[0].filename}:{where[0].lineno})" if where else ""
    return f"{type(exc).__name__}: {' '.join(str(exc).split()) or '(no message)'}{at}"


def _check_factory(spec: str, factory: Any, db: str | None, *, create: bool) -> None:
    """CliError unless app factory ``factory`` can be called on ``db`` (None: with no
    arguments, on its own default database, which must then exist unless ``create``).

    Only the call's arguments are checked, against the factory's signature, before it is
    called: a TypeError the factory raises itself is its own, and not said to be this.
    """
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # a callable whose signature Python cannot read
        return
    try:
        if db is not None:
            signature.bind(db=db)
        else:
            signature.bind()
    except TypeError as exc:
        if db is not None:
            raise CliError(
                f"app factory {spec!r} cannot be called with db= alone ({exc}); a command "
                "calls it with db= (the SQLite file or postgresql:// URL), so give it that "
                "parameter and defaults for the rest, as in def build_runtime(db='agentrt.db'), "
                "or give an AgentRuntime as --app"
            ) from None
        raise CliError(
            f"app factory {spec!r} cannot be called without arguments ({exc}); give its "
            "database with --db FILE, or give its other parameters defaults"
        ) from None
    param = signature.parameters.get("db")
    default = None if param is None else param.default
    if db is None and isinstance(default, str | os.PathLike):
        # The factory would open (and so make) its default file: a read command must not
        # leave an empty database in the working directory for want of --db.
        path = os.fsdecode(default)
        if not create and "://" not in path and not Path(path).exists():
            raise CliError(
                f"no database at {path!r} (the default db= of app factory {spec!r}); "
                "give the database with --db FILE, or run where that file is (this command "
                "reads an existing database and does not make a new one)"
            )
        check_database(path, create=create)


def database_runtime(db: str) -> "AgentRuntime":
    """The runtime of database ``db`` alone, for commands that only use its tables.

    It has no app: its model answers nothing (a command that would drive a run needs the
    app), it has no tools (so no tool's arguments are shown: without its declaration no
    field is known not to be sensitive), and it records no spans.
    """
    from agentrt.runtime import AgentRuntime
    from agentrt.testing import ScriptedChatModel

    return AgentRuntime(
        ScriptedChatModel([], model_name="agentrt-database-only"), db=db, tracing=None
    )


@contextmanager
def runtime_from(
    spec: str | None,
    db: str | None,
    *,
    db_only: bool = False,
    create: bool = False,
    app_only: bool = False,
) -> Iterator["AgentRuntime"]:
    """The app's runtime for one command; its refusals become one line and an exit status.

    ``db_only``: the command needs only the database, so --db alone will do. ``create``:
    the command may make a new database (else a --db that does not exist is an error).
    ``app_only``: the command reads only the app, never its runs: with no --db, an app
    factory gets a scratch database that goes with the command.
    """
    import tempfile

    with tempfile.TemporaryDirectory(prefix="agentrt-") if app_only else nullcontext() as tmp:
        scratch = str(Path(tmp, "scratch.db")) if tmp is not None else None
        with _runtime_from(spec, db, db_only=db_only, create=create, scratch=scratch) as rt:
            yield rt


@contextmanager
def _runtime_from(
    spec: str | None, db: str | None, *, db_only: bool, create: bool, scratch: str | None
) -> Iterator["AgentRuntime"]:
    import sqlite3

    from agentrt.errors import AgentRuntimeError, StartupStopped

    try:
        rt = load_runtime(spec, db, db_only=db_only, create=create, scratch=scratch)
    except StartupStopped:
        raise  # not a failure: the command was told to stop, and says so itself
    except (CliError, AgentRuntimeError) as exc:
        fail(exc)
    except sqlite3.DatabaseError as exc:
        if db and "://" in db:  # a URL may hold a password, which is never printed
            where = "the database --db names"
        else:
            where = f"database {db!r}" if db else "the app's database"
        fail(CliError(f"cannot open {where}: {exc}; is it an agentrt SQLite database?"))
    try:
        yield rt
    except (CliError, AgentRuntimeError) as exc:
        # The one place a command's refusal becomes a line on stderr and an exit status.
        fail(exc)
    except sqlite3.DatabaseError as exc:
        fail(CliError(f"database {rt.store.location!r} cannot be read: {exc}"))
    finally:
        rt.close()


def fail(exc: Exception) -> Any:
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2 if isinstance(exc, CliError) else 1)


def not_text(args: list[str]) -> str | None:
    """Why an argument is not text, or None. A shell passes bytes; Python hands over those
    that do not decode in the locale's encoding as lone surrogates, which no file, database
    or terminal can take."""
    for arg in args:
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            try:
                raw: object = arg.encode("utf-8", "surrogateescape")
            except UnicodeEncodeError:
                raw = arg.encode("utf-8", "backslashreplace").decode("utf-8")
            return (
                f"argument {raw!r} is not valid UTF-8 text; type it again in a terminal that "
                "sends UTF-8 (e.g. with LANG=C.UTF-8)"
            )
    return None


def age(since: float, now: float | None = None) -> str:
    seconds = max(0, int((time.time() if now is None else now) - since))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def table(headers: list[str], rows: list[list[str]]) -> None:
    if not rows:
        typer.echo("(none)")
        return
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    typer.echo("  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in rows:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def short(value: Any, width: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return text if len(text) <= width else text[: width - 3] + "..."


def shown_args(rt: "AgentRuntime", req: "ApprovalRequest", args: Any = None) -> Any:
    """A request's arguments (or ``args``) for display, its tool's sensitive fields and
    detected secrets masked."""
    from agentrt.approvals.display import shown_args

    return shown_args(req, rt.tools, args, redactor=rt.redactor)


def shown_request(
    rt: "AgentRuntime", req: "ApprovalRequest", known: list[Any] | None = None
) -> "ApprovalRequest":
    """A request with its words (reason, comment, superseded) as a person may see them; its
    arguments stay exact, for ``shown_args`` (``known``: its run's log's secret values)."""
    from agentrt.approvals.display import shown_request

    return shown_request(req, rt.tools, redactor=rt.redactor, known=known or ())


def print_run(run: "Run", rt: "AgentRuntime") -> None:
    from agentrt.tracing.shown import shown_run

    # Goal, output and error as a person may see them.
    known = rt.log_secrets(run.thread_id)
    run = shown_run(run, rt.redactor, known=known)
    typer.echo(f"thread    {run.thread_id}")
    typer.echo(f"status    {run.status.value}")
    typer.echo(f"goal      {run.goal}")
    typer.echo(f"principal {run.principal.id} (tenant {run.principal.tenant})")
    u = run.usage
    typer.echo(
        f"usage     {u['steps']} steps, {u['tool_calls']} tool calls, "
        f"{u['input_tokens'] + u['output_tokens']} tokens, {usd(u['cost_usd'])}, "
        f"{u['active_seconds']:.2f}s active, "
        f"{u.get('waited_seconds', 0.0):.0f}s waiting for a person"
        + (
            f", {u['retry_waited_seconds']:.0f}s waiting to retry"
            if u.get("retry_waited_seconds")
            else ""
        )
        + (f" ({u['estimated_tokens']} tokens estimated)" if u.get("estimated_tokens") else "")
    )
    typer.echo(f"budget    {describe_budget(run)}")
    if run.output:
        typer.echo(f"output    {run.output}")
    if run.error:
        typer.echo(f"error     {run.error}")
    if run.retry_at is not None:
        typer.echo(f"retry at  {moment(run.retry_at)} (or now: agentrt resume)")
    if run.budget_report:
        r = run.budget_report
        typer.echo(
            f"stopped   before {r['action']}: {r['limit']}={r['allowed']:g}, "
            f"{r['used']:g} used, {r['requested']:g} more needed"
        )
    for req in run.pending_approvals:
        print_request(req, rt, known)


def message_line(message: "ThreadMessage", rt: "AgentRuntime", known: list[Any]) -> str:
    """One message of a thread in a line: who said what, how it ended, what it spent;
    masked with ``known``, the secret values of the thread's log (``rt.log_secrets``)."""
    from agentrt.tracing.shown import shown

    u = message.usage
    answer = message.output if message.output is not None else message.error
    said = f"#{message.index} {message.status:<17} {message.principal.id}: "
    said += short(shown(message.text, rt.redactor, known=known), 40)
    if answer:
        said += f" -> {short(shown(answer, rt.redactor, known=known), 40)}"
    return (
        f"{said}  ({u['steps']} steps, {u['tool_calls']} tool calls, "
        f"{u['input_tokens'] + u['output_tokens']} tokens, {usd(u['cost_usd'])})"
    )


def describe_budget(run: "Run") -> str:
    """Each limit in force with what is left of it, e.g. "max_tool_calls 5 (2 left)"."""
    from agentrt.budget import remaining

    now = time.time()
    left = remaining(run.budget, run.usage, now=now)
    parts = [
        f"{name} {value:g} ({left[name]:g} left)"
        if name != "deadline"
        else f"deadline {moment(value, now=now)}"
        for name, value in run.budget.limits().items()
    ]
    if run.budget.asks:
        parts.append(f"ask {run.budget.approver_role or 'anyone'} to raise")
    return ", ".join(parts) or "no limits"


def print_request(
    req: "ApprovalRequest", rt: "AgentRuntime", known: list[Any] | None = None
) -> None:
    """A pending request in a few lines, its words and arguments as a person may see them
    (``known``: its run's log's secret values)."""
    req = shown_request(rt, req, known)
    if req.kind == "budget":
        a = req.args
        typer.echo("waiting for a person to raise a budget limit:")
        typer.echo(f"  id            {req.id}")
        typer.echo(
            f"  limit         {a['limit']}={a['allowed']:g}, {a['used']:g} used, "
            f"{a['requested']:g} more needed"
        )
        typer.echo(f"  reason        {req.reason}")
        typer.echo(f"  required role {req.required_role or '(any)'}")
        typer.echo(
            f"  raise with    agentrt raise-limit {req.id} --to <new {a['limit']}> --as <you>"
        )
        return
    in_doubt = req.kind == "reconcile"
    typer.echo(
        "waiting for a person to say whether an effect happened:"
        if in_doubt
        else "waiting for approval:"
    )
    typer.echo(f"  id            {req.id}")
    typer.echo(f"  action        {req.tool}({short(shown_args(rt, req), 200)})")
    label, because = rule_of(req)
    typer.echo(f"  {label:<14}{because}")
    typer.echo(f"  required role {req.required_role or '(any)'}")
    if in_doubt:
        typer.echo(
            f"  settle with   agentrt reconcile resolve {req.id} --result '<JSON>' --as <you> "
            f"(it happened), or agentrt reconcile retry {req.id} --as <you> (it did not)"
        )


def rule_of(req: "ApprovalRequest") -> tuple[str, str]:
    """A label and a line: the rule that asked for the request, with its reason; or, for a
    request no rule asked for (an effect in doubt), the reason alone."""
    if req.rule_id is None:
        return "reason", req.reason
    return "rule", f"{req.rule_id}: {req.reason}"


def json_option(flag: str, text: str | None) -> Any:
    """The value of an option given as JSON (None if it was not given)."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"{flag} {text!r} is not JSON: {exc}") from None
