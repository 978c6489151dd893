"""`agentrt eval DATASET`: run a dataset of cases on the app and gate on the result; and
`agentrt eval --replay`: what recorded runs would do under today's code or a candidate
policy.

Exit status: 0 when the pass rate reaches --threshold and nothing regressed against
--baseline; 1 when it does not; 2 for bad input (a dataset with an unknown field, an
unknown scorer, a CEL syntax error, a tool the app lacks, a bad flag, a --junit or
--save-baseline path that cannot be written or is one of the eval's inputs, a judge model
that cannot be made), before any run starts. With --replay: 0 when every run replays
identical, 3 when any diverges (as `agentrt replay`), 1 when none was replayed or any
could not be (a policy gate never passes having checked nothing).
"""

import importlib
import json
import os
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from agentrt.cli.common import CliError, app, fail, raised, short, table
from agentrt.cli.eval_files import check_not_database, check_outputs
from agentrt.cli.options import LIMIT_MAX, AppOptions, grouped, within
from agentrt.cli.where import app_from_toml

if TYPE_CHECKING:
    from agentrt.evals import Dataset, EvalReport, Judge, RunWhatIf, WhatIfReport
    from agentrt.runtime import AgentRuntime

_PATH = Annotated[str | None, typer.Argument(help="The dataset: a YAML file, or JSONL.")]


@app.command("eval")
@grouped
def eval_command(
    dataset: _PATH = None,
    *,
    app_options: AppOptions,
    concurrency: Annotated[int, typer.Option(min=1, help="Runs at a time.")] = 4,
    repeat: Annotated[int, typer.Option(min=1, help="Runs of each case.")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    junit: Annotated[str | None, typer.Option(help="Write a JUnit XML report here.")] = None,
    threshold: Annotated[float, typer.Option(help="Lowest pass rate (0 to 1) that exits 0.")] = 1.0,
    baseline: Annotated[
        str | None, typer.Option(help="A saved report: exit 1 if any case got worse.")
    ] = None,
    save_baseline: Annotated[
        str | None, typer.Option(help="Save this report as a baseline here.")
    ] = None,
    judge: Annotated[
        str | None, typer.Option(help="module:attribute of the judge's chat model.")
    ] = None,
    replay: Annotated[
        bool, typer.Option("--replay", help="Replay recorded runs instead (what-if).")
    ] = False,
    last: Annotated[
        int,
        typer.Option(min=1, callback=within(1, LIMIT_MAX), help="With --replay: the last N runs."),
    ] = 50,
    status: Annotated[
        list[str] | None,
        typer.Option(
            metavar="STATUS", help="With --replay: only runs in this status (repeat for several)."
        ),
    ] = None,
    tenant: Annotated[str | None, typer.Option(help="With --replay: one tenant's runs.")] = None,
    policy: Annotated[
        str | None, typer.Option(help="With --replay: decide by this policy file instead.")
    ] = None,
) -> None:
    """Run a dataset of cases on the app, score each run, and report; or, with --replay,
    replay recorded runs under today's code (or --policy) and count what changes."""
    from agentrt.errors import ConfigError
    from agentrt.evals import EvalReport, load_dataset

    # Everything given is checked before the app's database is opened or a run starts.
    try:
        if replay:
            _refuse_with_replay(junit, baseline, save_baseline, judge, repeat)
        else:
            _refuse_without_replay(status, tenant, policy)
            if dataset is None:
                raise CliError("give a dataset file, or --replay for recorded runs")
            if not 0.0 <= threshold <= 1.0:
                raise CliError(f"--threshold must be between 0 and 1, got {threshold!r}")
            inputs = {"the dataset": dataset, "--baseline": baseline}
            check_outputs(junit, save_baseline, inputs, _database_file(app_options.db))
        loaded = load_dataset(dataset) if dataset is not None else None
        saved = EvalReport.load(baseline) if baseline is not None else None
        grader = _grader(loaded, judge) if loaded is not None and not replay else None
    except (CliError, ConfigError) as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    if replay:
        _what_if(app_options, loaded, last, status or [], tenant, policy, as_json)
        return
    assert loaded is not None
    with app_options.runtime(create=True) as rt:
        opened = _database_file(rt.db)
        if opened is not None:  # an app factory's own default, known only now
            check_not_database(junit, save_baseline, opened)
        report = _run(rt, loaded, concurrency, repeat, grader)
    _finish(report, as_json, junit, threshold, saved, save_baseline)


def _refuse_with_replay(*given: Any) -> None:
    names = ("--junit", "--baseline", "--save-baseline", "--judge", "--repeat")
    used = [n for n, v in zip(names, given, strict=True) if v not in (None, 1)]
    if used:
        raise CliError(f"{', '.join(used)} apply to a dataset run, not to --replay")


def _refuse_without_replay(
    status: list[str] | None, tenant: str | None, policy: str | None
) -> None:
    used = [n for n, v in (("--status", status), ("--tenant", tenant), ("--policy", policy)) if v]
    if used:
        raise CliError(f"{', '.join(used)} apply to --replay only")


def _database_file(db: str | None) -> str | None:
    """The SQLite file the eval's runs go into, as far as it is known before the app is
    loaded (--db, AGENTRT_DB, agentrt.toml); None for a server or none given."""
    from agentrt.errors import ConfigError
    from agentrt.runtime import sqlite_file

    db = db or app_from_toml()[1]
    if db is None:
        return None
    try:
        return sqlite_file(db)
    except ConfigError:
        return None  # another scheme: refused, saying so, when the database is opened


def _write(flag: str, path: str, write: Any) -> None:
    """Write an output file; OSError as one line (exit 2): the report was printed."""
    try:
        write(path)
    except OSError as exc:
        fail(CliError(f"cannot write {flag} {path!r}: {exc.strerror or exc}"))


def _judge_model(spec: str) -> Any:
    """The chat model module:attribute names (or a factory's)."""
    from langchain_core.language_models import BaseChatModel

    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise CliError(f"--judge {spec!r} is not of the form module:attribute")
    sys.path.insert(0, os.getcwd())
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise CliError(f"--judge: cannot import module {module_name!r}: {exc}") from None
    finally:
        sys.path.pop(0)
    for part in attr.split("."):
        if not hasattr(target, part):
            raise CliError(f"--judge: module {module_name!r} has no attribute {attr!r}")
        target = getattr(target, part)
    if not isinstance(target, BaseChatModel) and callable(target):
        try:
            target = target()
        except Exception as exc:  # the user's factory, or a callable that is none
            raise CliError(f"--judge {spec!r}: calling it failed: {raised(exc)}") from None
    if not isinstance(target, BaseChatModel):
        raise CliError(f"--judge {spec!r} is {target!r}, not a LangChain chat model")
    return target


def _grader(dataset: "Dataset", judge: str | None) -> "Judge | None":
    """The judge of the dataset's rubrics (--judge's model, or judge.model), made now so
    that a model that cannot be made is bad input, said before any run; None without
    rubrics."""
    from agentrt.errors import ConfigError
    from agentrt.evals import DatasetError
    from agentrt.evals.runner import judge_for

    model = _judge_model(judge) if judge is not None else None
    try:
        return judge_for(dataset, model)
    except DatasetError:
        raise
    except ConfigError as exc:  # the provider's own words may run to many lines: one
        said = " ".join(str(exc).split())
        raise CliError(f"{dataset.source}: judge.model: {said}") from None
    except Exception as exc:  # a provider's own constructor: a missing key, a bad setting
        raise CliError(f"{dataset.source}: judge.model: {raised(exc)}") from None


def _run(
    rt: "AgentRuntime", dataset: "Dataset", concurrency: int, repeat: int, judge: "Judge | None"
) -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from agentrt.evals import DatasetError, run_eval

    total = len(dataset.cases) * repeat
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(f"eval {dataset.name}", total=total)
        try:
            return run_eval(
                rt,
                dataset,
                concurrency=concurrency,
                repeat=repeat,
                judge=judge,
                on_run=lambda _: progress.advance(task),
            )
        except DatasetError as exc:
            raise CliError(str(exc)) from None


def _finish(
    report: "EvalReport",
    as_json: bool,
    junit: str | None,
    threshold: float,
    saved: "EvalReport | None",
    save_to: str | None,
) -> None:
    from agentrt.evals import regressions, write_junit

    worse = regressions(saved, report) if saved is not None else []
    if as_json:
        body = report.to_dict() | {"threshold": threshold, "regressions": worse}
        typer.echo(json.dumps(body, indent=2))
    else:
        _print_report(report)
    if junit is not None:
        _write("--junit", junit, lambda path: write_junit(report, path))
    if save_to is not None:
        _write("--save-baseline", save_to, report.save)
    failed = False
    if report.pass_rate < threshold:
        typer.secho(
            f"pass rate {report.pass_rate:.1%} is under the threshold {threshold:.1%}",
            fg=typer.colors.RED,
            err=True,
        )
        failed = True
    for line in worse:
        typer.secho(f"regression: {line}", fg=typer.colors.RED, err=True)
        failed = True
    if failed:
        raise typer.Exit(1)


def _threads(ids: tuple[str, ...]) -> str:
    """A case's thread ids: one, or the first with the range of run numbers."""
    if len(ids) == 1:
        return ids[0]
    stem = ids[0].rpartition("-")[0]
    return f"{stem}-{{1..{len(ids)}}}"


def _print_report(report: "EvalReport") -> None:
    from agentrt.readable import usd

    def seconds(value: float) -> str:
        return f"{value:.2f}s"

    cases = report.cases()
    typer.echo(
        f"eval {report.dataset} ({report.eval_id}): {len(cases)} cases, {len(report.runs)} runs"
    )
    rows = [
        [
            c.name,
            f"{c.passed}/{c.runs}",
            usd(c.cost_usd),
            f"{c.tokens:.0f}",
            seconds(c.latency_p50),
            seconds(c.latency_p95),
            ", ".join(c.failed_scorers) or "-",
            _threads(c.thread_ids),
        ]
        for c in cases
    ]
    rows.append(
        [
            "(all)",
            f"{report.passed}/{len(report.runs)}",
            usd(report.cost_usd / max(len(report.runs), 1)),
            f"{report.tokens / max(len(report.runs), 1):.0f}",
            seconds(report.latency(50)),
            seconds(report.latency(95)),
            "",
            "",
        ]
    )
    table(["case", "passed", "cost", "tokens", "p50", "p95", "failed", "thread"], rows)
    typer.echo("")
    table(
        ["scorer", "passed", "mean score"],
        [
            [
                s.name,
                f"{s.passed}/{s.runs}",
                "-" if s.mean_value is None else f"{s.mean_value:.2f}",
            ]
            for s in report.scorers()
        ],
    )
    failing = [r for r in report.runs if not r.passed]
    if failing:
        typer.echo("\nfailed runs (agentrt trace THREAD shows one):")
        for run in failing:
            label = f"{run.case} [{run.repeat}/{report.repeat}]" if report.repeat > 1 else run.case
            left = ", cancelled once scored" if run.cancelled else ""
            typer.echo(f"  {label}  {run.thread_id}  ({run.status}{left})")
            if run.error:
                typer.echo(f"    error: {short(run.error, 200)}")
            for score in run.failures:
                typer.echo(f"    {score.name}: {short(score.reason, 200)}")
    cancelled = [r for r in report.runs if r.cancelled]
    if cancelled:
        waiting = ", ".join(sorted({r.status for r in cancelled}))
        runs = "1 run was" if len(cancelled) == 1 else f"{len(cancelled)} runs were"
        typer.echo(
            f"\n{runs} left waiting ({waiting}) and cancelled once scored, their requests "
            "with them: an eval leaves nothing a reviewer could approve into a real effect"
        )
    typer.echo(
        f"\npass rate {report.pass_rate:.1%} ({report.passed}/{len(report.runs)}), "
        f"cost {usd(report.cost_usd)}, {report.tokens} tokens, "
        f"latency p50 {seconds(report.latency(50))} p95 {seconds(report.latency(95))}"
    )


def _what_if(
    app_options: AppOptions,
    dataset: Any,
    last: int,
    statuses: list[str],
    tenant: str | None,
    policy_file: str | None,
    as_json: bool,
) -> None:
    from agentrt.errors import ConfigError
    from agentrt.evals import recent_runs, what_if
    from agentrt.policies import Policy
    from agentrt.runs.record import status_named

    with app_options.runtime() as rt:
        try:
            named = [status_named(s) for s in statuses]
            candidate = Policy.from_file(policy_file) if policy_file is not None else None
            if candidate is not None:
                candidate.check_tools(rt.tools.names())
        except ConfigError as exc:
            raise CliError(str(exc)) from None
        if dataset is not None:
            ids = dataset.recorded_runs()
            if not ids:
                raise CliError(
                    f"no case of {dataset.source!r} has recorded answers (model: "
                    "{recorded: THREAD}); without a dataset, --replay takes the last runs"
                )
        else:
            ids = recent_runs(rt, last=last, statuses=named, tenant=tenant)
        found = what_if(rt, ids, policy=candidate)
    if as_json:
        typer.echo(json.dumps(found.to_dict(), indent=2))
    else:
        _print_what_if(found)
    unchecked = _unchecked(found)
    if unchecked is not None:
        typer.secho(f"error: {unchecked}", fg=typer.colors.RED, err=True)
    if found.diverged:
        raise typer.Exit(3)
    if unchecked is not None:
        raise typer.Exit(1)


def _unchecked(found: "WhatIfReport") -> str | None:
    """Why the replay cannot vouch for the runs asked for, or None: none was replayed, or
    some could not be. A policy gate must not pass having checked nothing."""
    if not found.runs:
        return (
            "no recorded run was replayed: none matched (the database has no runs of that "
            "status or tenant); nothing was checked"
        )
    missed = len(found.not_replayed)
    if not missed:
        return None
    return (
        f"{missed} of {len(found.runs)} runs could not be replayed (each one's error says "
        f"why); only {found.replayed} were checked, so the replay does not vouch for the rest"
    )


def _print_what_if(found: "WhatIfReport") -> None:
    def outcomes(values: frozenset[str]) -> str:
        return ",".join(sorted(values)) or "-"

    typer.echo(f"replayed under policy {found.policy}")
    table(
        ["thread", "status", "decisions were", "now", "replay"],
        [
            [
                r.thread_id,
                r.status,
                outcomes(r.was),
                outcomes(r.now),
                _replay_column(r),
            ]
            for r in found.runs
        ],
    )
    typer.echo("")
    typer.echo(found.summary())


def _replay_column(run: "RunWhatIf") -> str:
    if run.identical is None:
        return f"not replayed: {short(run.error or '', 90)}"
    return "identical" if run.identical else short(run.divergence or "", 100)
