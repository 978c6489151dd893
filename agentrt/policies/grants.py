"""Who may use which credential: the policy file's ``credentials:`` section.

A tool that declares credentials (``@tool(credentials=["crm"])``) runs only for a
principal the policy grants each of them to; anyone else is denied before any rule, as a
principal without a tool's scopes is, and the decision says why. A credential the policy
does not name is granted to no one; ``"*"`` names every credential.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from agentrt.policies.model import CredentialGrant
from agentrt.principal import Principal

__all__ = ["credential_refusal", "ungranted_names"]


def credential_refusal(
    grants: Mapping[str, CredentialGrant],
    credentials: tuple[str, ...],
    tool: str,
    principal: Principal,
    policy: str,
) -> str | None:
    """Why ``principal`` may not use one of the ``credentials`` tool ``tool`` needs, or None."""
    for name in credentials:
        grant = grants.get(name, grants.get("*"))
        if grant is None:
            return (
                f"tool {tool!r} needs credential {name!r}, which policy {policy!r} grants to "
                f"no one; grant it under `credentials: {{{name}: {{roles: [...]}}}}`"
            )
        missing = _unmet(grant, principal)
        if missing:
            why = grant.reason or f"policy {policy!r} grants it only to {missing}"
            return (
                f"principal {principal.id!r} may not use credential {name!r}, which tool "
                f"{tool!r} needs: {why}"
            )
    return None


def _unmet(grant: CredentialGrant, principal: Principal) -> str:
    """The grant's terms, in words, if ``principal`` does not meet them; else ''."""
    terms = []
    if grant.principals is not None and principal.id not in grant.principals:
        terms.append(f"principals {grant.principals!r}")
    if grant.roles is not None and not set(grant.roles) & set(principal.roles):
        terms.append(f"holders of roles {grant.roles!r}")
    if grant.tenants is not None and principal.tenant not in grant.tenants:
        terms.append(f"tenants {grant.tenants!r}")
    return " and ".join(terms)


def ungranted_names(
    grants: Mapping[str, CredentialGrant], declared: Iterable[str]
) -> tuple[str, str] | None:
    """The first grant naming a credential no tool declares (a typo, most likely: the
    credential it meant stays granted to no one), and why, in words; None if none does."""
    known = sorted(set(declared))
    for name in grants:
        if name != "*" and name not in known:
            return name, (
                f"the credentials section grants credential {name!r}, which no tool of this "
                f"runtime declares; the tools' credentials: {known!r}"
            )
    return None
