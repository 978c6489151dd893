"""Which app a run belongs to: the identity its row records and workers claim by.

Apps may share a database: two teams' agents on one PostgreSQL, or the old and the new
version of one app during a rolling deploy. A run is carried on by the model, tools and
policy of whoever drives it, so a worker claims only the runs its own app made
(``LeaseStore.claim_runs(app=...)``), and ``agentrt serve`` drives no other app's run.

The identity is ``AgentRuntime(app=...)``: a name the app keeps across its versions. By
default it is the names of the app's tools (``tools:`` and a digest of them): apps that
can do different things never drive each other's runs, and the versions of one app that
keep its tools (a new model, prompt or policy) share their runs. To that default a
version that adds or drops a tool is another app, whose workers leave the runs of the
version before (waiting at a gate, to retry, or new) to that version's workers: name the
app when its tools change while runs of the old version may still need a driver (its
name may be the identity those runs carry, which a worker logs as it starts: the new
version then goes on with them). ``rt.resume(thread_id)`` carries on any run, whichever
app made it.

Runs made before rows recorded their app (none recorded) go to any worker, as they did.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from agentrt.errors import ConfigError

__all__ = ["DERIVED", "app_identity", "owns"]

DERIVED = "tools:"
"""What an identity agentrt derives from the tools' names begins with."""

_LONGEST = 200


def app_identity(given: object, tool_names: Iterable[str]) -> str:
    """The app's identity: ``given`` (AgentRuntime's ``app``), or one derived from the
    names of its tools. ConfigError naming a ``given`` that cannot be one."""
    if given is None:
        names = "\n".join(sorted(set(tool_names)))
        return DERIVED + hashlib.sha256(names.encode()).hexdigest()[:16]
    if (
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
    return given


def owns(app: str, recorded: str | None) -> bool:
    """True if a run that recorded the app ``recorded`` is ``app``'s to drive: made by it,
    or made before runs recorded their app."""
    return recorded is None or recorded == app
