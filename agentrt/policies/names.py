"""What a policy's rules name that the runtime lacks: tools, MCP servers, credentials.

A rule whose ``match`` names a tool, server or credential nobody has (a typo, most
likely: ``crn`` for ``crm``, ``CRM_*`` for ``crm_*``) matches no action, so a deny or an
approval rule silently never applies. ``Policy.check_tools`` refuses one when the runtime
is built, once its toolsets (MCP servers too) have listed their tools.

An entry equal to a name matches it, even if the name holds glob characters
(``wipe[prod]``); read as a glob too, such an entry would match other names
(``wiped``), so one that does is refused, saying how to write the name alone:
each of ``*?[`` in brackets (``wipe[[]prod]``), as fnmatch reads them.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Collection, Sequence
from typing import Literal

from agentrt.policies.model import Rule

__all__ = [
    "MatchField",
    "first_problem",
    "first_unmatched",
    "is_glob",
    "literal",
    "unknown_text",
]

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


def literal(name: str) -> str:
    """An entry that matches ``name`` alone: each of its glob characters ``*?[`` in
    brackets (``wipe[prod]`` -> ``wipe[[]prod]``)."""
    return re.sub(r"([*?[])", r"[\1]", name)


def first_problem(
    rules: Sequence[Rule], field: MatchField, known: Collection[str]
) -> tuple[int, int, str] | None:
    """The first (rule index, entry index, why) of the rules' ``match.<field>`` that names
    nothing in ``known``, or that is one known name and, as a glob, others too; None if
    none does."""
    found = first_unmatched(rules, field, known)
    if found is not None:
        index, at, pattern = found
        return index, at, unknown_text(rules[index], field, pattern, known)
    for index, rule in enumerate(rules):
        for at, pattern in enumerate(getattr(rule.match, field) or ()):
            if pattern not in known or not is_glob(pattern):
                continue
            others = sorted(
                name for name in known if name != pattern and fnmatch.fnmatchcase(name, pattern)
            )
            if others:
                one = _WHAT[field][0]
                return (
                    index,
                    at,
                    (
                        f"rule {rule.id!r} names {field} {pattern!r}, which is the {one} "
                        f"{pattern!r} and, read as a glob, matches {others!r} too; write "
                        f"{literal(pattern)!r} to name that {one} alone (each of *?[ in "
                        "brackets), or a glob that says which you mean"
                    ),
                )
    return None


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
