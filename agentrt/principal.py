"""Who a run acts for, and who decides at a gate."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from agentrt.errors import ConfigError

__all__ = ["Principal"]


@dataclass(frozen=True, slots=True)
class Principal:
    """A person or service: an id, the roles it holds, its tenant, and the scopes it grants.

    Scopes default to none: a tool that declares scopes is denied to a principal without them.
    """

    id: str
    """Stable identifier, e.g. a user name or a service account."""
    roles: tuple[str, ...] = field(default=())
    """Roles held, e.g. ("operator",); approval rules ask for one of these."""
    tenant: str | None = None
    """Tenant the principal belongs to; runs and approvals are filtered by it. ``"*"``
    (``Principal.ALL_TENANTS``) is a principal of no one tenant that decides for all:
    crossing tenants is said, never implied by leaving the tenant out."""
    scopes: tuple[str, ...] = field(default=())
    """Scopes granted, e.g. ("orders:read",); a tool's required scopes must all be here."""

    def __init__(
        self,
        id: str,
        roles: Iterable[str] = (),
        tenant: str | None = None,
        scopes: Iterable[str] = (),
    ) -> None:
        if not isinstance(id, str) or not id.strip():
            raise ConfigError(f"a Principal needs a non-empty id, got {id!r}")
        for name, values in (("roles", roles), ("scopes", scopes)):
            if isinstance(values, str):
                raise ConfigError(
                    f"Principal {name} must be a list of strings, got the string {values!r}; "
                    f"write {name}=[{values!r}]"
                )
        object.__setattr__(self, "id", id)
        object.__setattr__(self, "roles", tuple(roles))
        object.__setattr__(self, "tenant", tenant)
        object.__setattr__(self, "scopes", tuple(scopes))

    ALL_TENANTS: ClassVar[str] = "*"
    """The tenant of a principal that may decide every tenant's requests."""

    def decides_for(self, tenant: str | None) -> bool:
        """True if this principal may decide a request of ``tenant``: its own tenant's, or
        any with ALL_TENANTS. A principal without a tenant decides tenantless requests only."""
        return self.tenant in (Principal.ALL_TENANTS, tenant)

    def to_dict(self) -> dict[str, Any]:
        """JSON form, as stored in the run's state and row."""
        return {
            "id": self.id,
            "roles": list(self.roles),
            "tenant": self.tenant,
            "scopes": list(self.scopes),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Principal:
        """Inverse of to_dict."""
        return cls(
            data["id"],
            roles=data.get("roles", ()),
            tenant=data.get("tenant"),
            scopes=data.get("scopes", ()),
        )
