"""The one `agentrt` app, its commands listed without loading them: `agentrt --help`
stays quick.

typer builds each command's click object from its function's signature, and the modules
holding the commands import what they need; building all of them took a third of
`agentrt --help`'s time. The top-level help needs only each command's name and the first
sentence of its help, which click shortens to the terminal's width. ``Commands`` lists
those from SUMMARIES and loads every command module the first time a command is asked for
by name (run, its own --help, a typo to suggest a name for). Only the `agentrt` script
takes this path: ``agentrt.cli.app`` loads every command module first.
tests/test_cli_listed.py holds SUMMARIES to the commands' own help, and MODULES to the
modules that register commands.
"""

import importlib
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

__all__ = ["MODULES", "SUMMARIES", "Commands", "app", "load"]

MODULES = (
    "approvals",
    "artifacts",
    "budget",
    "demo",
    "eval",
    "keys",
    "mcp",
    "memory",
    "notify",
    "policy",
    "prune",
    "reconcile",
    "replay",
    "runs",
    "serve",
    "stats",
    "tools",
    "trace",
    "worker",
)
"""The modules under agentrt.cli that register commands on the one app, in this order."""

SUMMARIES = {
    "approve": "Approve a pending action; the run carries on once its whole gate is decided.",
    "reject": "Reject a pending action; the agent is told why.",
    "edit": "Run the action with other arguments; they pass through the policy again.",
    "artifacts": "List a run's artifacts (files its tools kept, results too large to inline), "
    "or write one out: ``agentrt artifacts THREAD report.csv --out report.csv``.",
    "raise-limit": "Raise the limit a run stopped at; it carries on.",
    "demo": "Run the refund desk on a scripted model, offline, up to its approval gate.",
    "eval": "Run a dataset of cases on the app, score each run, and report; or, with "
    "--replay, replay recorded runs under today's code (or --policy) and count what changes.",
    "mcp": "Serve the review queue as an MCP server on stdio, as the principal of an API key.",
    "notify": "Send the outbox's events to the app's webhook endpoints until SIGTERM or Ctrl-C.",
    "prune": "Delete finished runs older than an age: their checkpoints, spans and model calls "
    "too.",
    "replay": "Re-run a run with today's code and policy on its recorded model answers and "
    "results.",
    "runs": "List runs, newest first.",
    "show": "Show one run: status, usage, output, pending approval, its artifacts and its "
    "event log.",
    "resume": "Carry a run on from its last checkpoint (after a crash, or after a decision).",
    "cancel": "End a run that has not finished; its pending approvals are cancelled.",
    "serve": "Serve the app's runtime: the HTTP API (/runs, /approvals, /openapi.json) and /ui.",
    "stats": "Run analytics: runs by status, cost and tokens by tenant and by day, approval "
    "waits by rule and role, denials by rule, budget stops and the slowest tools.",
    "tools": "List every tool the app offers: effect, scopes, source; for a principal, the "
    "rule that would decide a call of it.",
    "trace": "Show a run's trace: every segment, step, model, tool and policy call, and waits.",
    "worker": "Drive the runs of the app's database, with any number of other workers.",
    "approvals": "The review queue: approval requests across all runs.",
    "keys": "API keys of `agentrt serve`: each acts as one principal.",
    "memory": "Memory across threads: one tenant's remembered items.",
    "webhooks": "The app's webhook endpoints and their deliveries: pending, delivered, dead.",
    "policy": "Check a policy file and explain its decisions.",
    "reconcile": "Settle a non-idempotent call that was interrupted or timed out: did it happen?",
}
"""Every top-level command, in the order the help lists them, with its help's first
sentence: all that click's short help reads of it."""


def load() -> None:
    """Import every command module: each registers its commands on the one app."""
    for name in MODULES:
        importlib.import_module(f"agentrt.cli.{name}")


class Commands(TyperGroup):
    """The top-level `agentrt` group: lists its commands from SUMMARIES until they are
    built, and builds them all the first time one is asked for by name. Built (or made
    from an app whose modules were loaded), it lists what it holds, commands an embedder
    added to the app among them."""

    def list_commands(self, ctx: Any) -> list[str]:
        return super().list_commands(ctx) if self.commands else list(SUMMARIES)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        # A name not built yet, or one to suggest a near name for (typer suggests from
        # the commands built): build them all, once.
        if not self.commands:
            self.commands.update(_built())
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        if self.commands:
            super().format_commands(ctx, formatter)
            return
        # What click's format_commands writes, from SUMMARIES rather than built commands;
        # a command of that help shortens it as click would.
        limit = formatter.width - 6 - max(map(len, SUMMARIES))
        rows = [
            (name, TyperCommand(name, help=text).get_short_help_str(limit))
            for name, text in SUMMARIES.items()
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _top() -> None:
    """What runs before every command: nothing. It makes typer build the group before a
    command module has registered a command."""


app = typer.Typer(
    name="agentrt",
    help="Inspect and drive agentrt runs: list, show, approve, reject, resume.",
    cls=Commands,
    callback=_top,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain help, as click prints it: typer's Rich panels give every flag a type ("--json
    # <bool>") as if it took a value, and read brackets in help texts as markup.
    rich_markup_mode=None,
)
"""The `agentrt` command: each module of MODULES registers its commands on it."""


def _built() -> dict[str, Any]:
    """Every command, built: the command modules loaded and the app's group made."""
    import typer.main

    load()
    group = typer.main.get_group(app)
    return dict(group.commands)
