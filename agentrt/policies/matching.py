"""Whether a rule is about an action: its ``match`` against the tool and the principal."""

from __future__ import annotations

import fnmatch

from agentrt.policies.model import Rule
from agentrt.principal import Principal
from agentrt.tools.contract import ToolSpec

__all__ = ["mismatch", "named"]


def named(name: str, entry: str) -> bool:
    """True if a rule's ``entry`` (of tools, scopes, servers or credentials) names ``name``:
    it is that name, or a glob (``*?[``, as fnmatch reads them) that matches it.

    Equal first: a name may hold glob characters (``wipe[prod]``, a credential called
    ``db[eu]``), and read only as a glob its entry would not match the very name it is.
    """
    return entry == name or fnmatch.fnmatchcase(name, entry)


def mismatch(rule: Rule, tool: ToolSpec, principal: Principal, *, explain: bool) -> str | None:
    """Why ``rule`` is not about this action, or None if its match holds.

    Without ``explain`` the reason is only "no": the hot path builds no strings.
    """
    m = rule.match
    if not any(named(tool.name, pattern) for pattern in m.tools):
        return f"tool {tool.name!r} is not in {m.tools!r}" if explain else "no"
    if m.effects is not None and tool.effect not in m.effects:
        return (
            f"effect {tool.effect.value!r} is not in {[e.value for e in m.effects]!r}"
            if explain
            else "no"
        )
    if m.scopes is not None and not any(
        named(scope, pattern) for scope in tool.scopes for pattern in m.scopes
    ):
        return (
            f"the tool's scopes {list(tool.scopes)!r} match none of {m.scopes!r}"
            if explain
            else "no"
        )
    if m.roles is not None and not set(m.roles) & set(principal.roles):
        return (
            f"principal roles {list(principal.roles)!r} hold none of {m.roles!r}"
            if explain
            else "no"
        )
    if m.tenants is not None and principal.tenant not in m.tenants:
        return f"tenant {principal.tenant!r} is not in {m.tenants!r}" if explain else "no"
    if m.credentials is not None and not any(
        named(c, p) for c in tool.credentials for p in m.credentials
    ):
        return f"the tool's credentials match none of {m.credentials!r}" if explain else "no"
    if m.servers is not None and not (
        tool.server is not None and any(named(tool.server, pattern) for pattern in m.servers)
    ):
        if not explain:
            return "no"
        if tool.server is None:
            return f"tool {tool.name!r} is not an MCP server's"
        return f"MCP server {tool.server!r} is not in {m.servers!r}"
    return None
