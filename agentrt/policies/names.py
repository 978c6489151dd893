"""What a policy's rules name that the runtime lacks: tools, MCP servers, credentials.

A rule whose ``match`` names a tool, server or credential nobody has (a typo, most
likely: ``crn`` for ``crm``, ``CRM_*`` for ``crm_*``) matches no action, so a deny or an
approval rule silently never applies. ``Policy.check_tools`` refuses one when the runtime
is built, once its toolsets (MCP servers too) have listed their tools.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Collection, Sequence
from typing import Literal

from agentrt.policies.model import Rule

__all__ = ["MatchField", "first_unmatched", "is_glob", "unknown_text"]

MatchField = Literal["tools", "servers", "credentials"]

_WHAT: dict[MatchField, tuple[str, str, str]] = {
    # field: (one of them, which ones there are, how they are listed)
    "tools": ("tool", "tool this runtime has", "known tools"),
    "servers": ("MCP server", "MCP server this runtime has", "its servers"),
    "credentials": ("credential", "credential its tools declare", "the tools' credentials"),
}


def is_glob(pattern: str) -> bool:
    """True if ``pattern`` has a wildcard a rule matches by (fnmatch's ``*?[``)."""
    return any(ch in pattern for ch in "*?[")


def first_unmatched(
    rules: Sequence[Rule], field: MatchField, known: Collection[str]
) -> tuple[int, int, str] | None:
    """The first (rule index, entry index, pattern) of the rules' ``match.<field>`` that
    names nothing in ``known``, matched as a rule matches (case-sensitively); None if none.

    ``"*"`` always passes: it means any, even where there is none (a runtime without
    tools, tools without credentials).
    """
    for index, rule in enumerate(rules):
        for at, pattern in enumerate(getattr(rule.match, field) or ()):
            if pattern == "*" or pattern in known:
                continue
            if is_glob(pattern) and any(fnmatch.fnmatchcase(name, pattern) for name in known):
                continue
            return index, at, pattern
    return None


def unknown_text(rule: Rule, field: MatchField, pattern: str, known: Collection[str]) -> str:
    """Why the runtime refuses ``rule``'s entry ``pattern`` of ``match.<field>``."""
    one, there, listed = _WHAT[field]
    names = f"{listed}: {sorted(known)!r}"
    if is_glob(pattern):
        return (
            f"rule {rule.id!r} names {field} {pattern!r}, a pattern that matches no {there} "
            f"(matching is case-sensitive); {names}"
        )
    if field == "credentials":
        return (
            f"rule {rule.id!r} names credential {pattern!r}, which no tool of this runtime "
            f"declares; {names}"
        )
    return f"rule {rule.id!r} names {one} {pattern!r}, which this runtime does not have; {names}"
