"""Which app a run belongs to: what its row records, and which workers may claim it.

Apps may share a database: two teams' agents on one PostgreSQL, or the old and the new
version of one app during a rolling deploy. A run is carried on by the model, tools and
policy of whoever drives it, so a worker claims only the runs its app may drive
(``LeaseStore.claim_runs(app=...)``, by ``may_drive``), and ``agentrt serve`` drives no
other run. The rule, which the stores' claims mirror in SQL:

- An app named ``AgentRuntime(app="refund-desk")`` records its name: only workers of that
  name claim its runs. A name is how apps that must not drive each other's runs (two
  teams' agents) say so, and how one app keeps its runs across versions whatever its tools.
- An app with no name records the names of its tools: a worker claims such a run if its
  own app has every one of them, named or not (the run asked for nothing else). A new
  version that adds a tool (or an MCP server that now lists one more) goes on with the
  runs of the version before, waiting at a gate for days or new; a version that drops a
  tool leaves the runs that may call it to workers that still have it. Apps with no name
  whose tools overlap so are one app to this rule: name them to keep them apart.
- A run that recorded neither (made before rows recorded their app, or by schema 15 of
  SQLite and 10 of PostgreSQL under an identity derived from a digest of its tools, which
  cannot be read back into tool names) goes to any worker, as it did.

``rt.resume(thread_id)`` carries on any run, whichever app made it.
"""

from __future__ import annotations

from collections.abc import Iterable

from agentrt.errors import ConfigError
from agentrt.records import AppIdentity, NewRun, RunRecord

__all__ = ["AppIdentity", "app_identity", "described", "lacks", "may_drive", "recorded"]

_LONGEST = 200


def app_identity(given: object, tool_names: Iterable[str]) -> AppIdentity:
    """The app's identity: its name ``given`` (AgentRuntime's ``app``; None: no name) and
    its tools. ConfigError naming a ``given`` that cannot be a name."""
    if given is not None and (
        not isinstance(given, str)
        or not given.strip()
        or given != given.strip()
        or len(given) > _LONGEST
        or not given.isprintable()
    ):
        raise ConfigError(
            f"app must be the app's name, up to {_LONGEST} printable characters with no "
            f"space around them (e.g. 'refund-desk'), or None, got {given!r}"
        )
    return AppIdentity(name=given, tools=frozenset(tool_names))


def recorded(app: AppIdentity | None) -> tuple[str | None, tuple[str, ...] | None]:
    """What a new run of ``app`` records (NewRun's ``app`` and ``tools``): its name, or
    with none its tools' names, sorted; neither for no app."""
    if app is None or app.name is not None:
        return (None if app is None else app.name), None
    return None, tuple(sorted(app.tools))


def may_drive(app: AppIdentity, run: RunRecord | NewRun) -> bool:
    """True if ``app``'s workers may claim ``run``: made by an app of its name, by an
    unnamed app whose tools it all has, or before runs recorded their app."""
    if run.app is not None:
        return run.app == app.name
    return run.tools is None or app.tools.issuperset(run.tools)


def lacks(app: AppIdentity, run: RunRecord | NewRun) -> str:
    """What ``run`` needs that ``app`` has not, in words ("" if ``app`` may drive it)."""
    if may_drive(app, run):
        return ""
    if run.app is not None:
        return f"the app {run.app!r}"
    missing = sorted(set(run.tools or ()) - app.tools)
    return f"the tool{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}"


def described(app: AppIdentity) -> str:
    """``app`` in words, for a log line."""
    if app.name is not None:
        return repr(app.name)
    return f"an app with no name and the tools {sorted(app.tools)!r}"
