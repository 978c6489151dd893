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
        held: dict[str, tuple[str, ...]] = {}
        for name, values in (("roles", roles), ("scopes", scopes)):
            if isinstance(values, str):
                raise ConfigError(
                    f"Principal {name} must be a list of strings, got the string {values!r}; "
                    f"write {name}=[{values!r}]"
                )
            # Checked here, not left to tuple(): a decider typed by a person (a resume in
            # Studio, a JSON body) is built with this, and must be told what was wrong.
            items = tuple(values) if isinstance(values, Iterable) else None
            if items is None or not all(isinstance(v, str) for v in items):
                raise ConfigError(
                    f"Principal {name} must be a list of strings, got {values!r}; "
                    f"e.g. {name}=['operator']"
                )
            held[name] = items
        if tenant is not None and not isinstance(tenant, str):
            raise ConfigError(f"a Principal's tenant is a name or None, got {tenant!r}")
        object.__setattr__(self, "id", id)
        object.__setattr__(self, "roles", held["roles"])
        object.__setattr__(self, "tenant", tenant)
        object.__setattr__(self, "scopes", held["scopes"])

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
        """Inverse of to_dict; ConfigError naming what is wrong with ``data``."""
        return cls(
            data.get("id"),  # type: ignore[arg-type]  # None: __init__ says it is missing
            roles=data.get("roles", ()),
            tenant=data.get("tenant"),
            scopes=data.get("scopes", ()),
        )
