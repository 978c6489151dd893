"""Memory across threads, as a tool sees it: one tenant's items in LangGraph's long-term store.

A tool reads and writes memory through ``ctx.memory`` (its run's tenant's shared items) or
``ctx.memory.personal`` (the run's principal's own). The namespace a tool names is always
put under its tenant's (and principal's) root here, never by the tool: a tool cannot name
another tenant's items, so memory is never mixed between tenants.

Writing memory is a side effect: a tool declared ``effect="read"`` gets a memory it can
only read (its calls are not recorded in the ledger, so a write there could happen twice);
a write tool's calls pass policy, approvals and the ledger like any other effect.
``memory_tools()`` gives the model the same access as tools of its own.

Layout in the store: ("tenants", <tenant>, "shared", *namespace) and ("tenants", <tenant>,
"principals", <principal id>, *namespace); a run without a tenant uses ("no-tenant", ...).
Labels are escaped ("." and "%"), as LangGraph allows no period in a label.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from langgraph.store.base import BaseStore, Item

from agentrt.errors import ConfigError
from agentrt.tools.credentials import Secrets
from agentrt.tools.errors import ToolError

__all__ = [
    "Memory",
    "MemoryItem",
    "Namespace",
    "memory_for",
    "memory_root",
    "parse_namespace",
    "tenant_items",
]

Namespace = str | Sequence[str]
"""A namespace: a path of labels, as a tuple, or as one string with "/" between them
("notes/customers")."""


def _escape(label: str) -> str:
    return label.replace("%", "%25").replace(".", "%2E")


def _unescape(label: str) -> str:
    return label.replace("%2E", ".").replace("%25", "%")


def parse_namespace(namespace: Namespace) -> tuple[str, ...]:
    """The labels of ``namespace``; ValueError naming it if one is empty or not text."""
    if isinstance(namespace, str):
        labels: tuple[object, ...] = tuple(namespace.split("/"))
    elif isinstance(namespace, Sequence):
        labels = tuple(namespace)
    else:
        raise ValueError(
            f"memory namespace {namespace!r} is a {type(namespace).__name__}; give labels as "
            "text with \"/\" between them, e.g. 'notes/customers', or as ('notes', 'customers')"
        )
    if namespace in ("", ()):
        return ()
    checked: list[str] = []
    for label in labels:
        if not isinstance(label, str) or not label or "\x00" in label:
            raise ValueError(
                f"memory namespace {namespace!r} has the label {label!r}; every label must "
                "be non-empty text without NUL, e.g. 'notes/customers' or ('notes', 'customers')"
            )
        checked.append(label)
    return tuple(checked)


def memory_root(tenant: str | None, principal: str | None = None) -> tuple[str, ...]:
    """Where a tenant's items (or, given ``principal``, that principal's own) start."""
    root = ("tenants", _escape(tenant)) if tenant is not None else ("no-tenant",)
    if principal is None:
        return (*root, "shared")
    return (*root, "principals", _escape(principal))


@dataclass(frozen=True, slots=True)
class MemoryItem:
    """One remembered value: where it is, its key, the value, and when it was written."""

    namespace: tuple[str, ...]
    """The namespace the tool named (its tenant's root not included)."""
    key: str
    """Unique within the namespace."""
    value: dict[str, Any]
    """The JSON object remembered."""
    created_at: datetime
    """When the key was first written."""
    updated_at: datetime
    """When it was last written."""
    principal: str | None = None
    """Whose own item it is; None for the tenant's shared items."""

    def to_dict(self) -> dict[str, Any]:
        """JSON form, as a tool result or the CLI shows it."""
        return {
            "namespace": "/".join(self.namespace),
            "key": self.key,
            "value": self.value,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            **({"principal": self.principal} if self.principal is not None else {}),
        }


class Memory:
    """One tenant's long-term memory (or one principal's own): get, search, put, delete.

    Made by the runtime for each tool call (``ctx.memory``) and by ``rt.memory(tenant)``;
    the tenant is the run's, never the tool's to choose.
    """

    def __init__(
        self,
        store: BaseStore | None,
        *,
        tenant: str | None,
        principal: str | None = None,
        personal: bool = False,
        writable: bool = True,
        tool: str | None = None,
        secrets: Secrets | None = None,
    ) -> None:
        if personal and principal is None:
            raise ValueError("a personal memory needs the principal whose it is")
        self._store = store
        self.tenant = tenant
        """The tenant whose items these are."""
        self.principal = principal
        """The principal the view is for (the run's); its own items are ``personal``."""
        self.is_personal = personal
        """True for the principal's own items, False for the tenant's shared ones."""
        self.writable = writable
        """False for a tool declared effect="read": it may only read."""
        self._tool = tool
        # The call's credentials: cut out of whatever it writes, as out of its result.
        self._secrets = secrets if secrets is not None else Secrets()
        self._root = memory_root(tenant, principal if personal else None)

    @property
    def personal(self) -> Memory:
        """The principal's own items, which the tenant's other principals never see:
        ``ctx.memory.personal``."""
        if self.principal is None:
            raise ValueError("this memory was made for no principal; it has no personal part")
        return Memory(
            self._store,
            tenant=self.tenant,
            principal=self.principal,
            personal=True,
            writable=self.writable,
            tool=self._tool,
            secrets=self._secrets,
        )

    def scrubbing(self, secrets: Secrets) -> Memory:
        """This view, cutting ``secrets`` (a call's credentials) out of what it writes."""
        return Memory(
            self._store,
            tenant=self.tenant,
            principal=self.principal,
            personal=self.is_personal,
            writable=self.writable,
            tool=self._tool,
            secrets=secrets,
        )

    def _where(self, namespace: Namespace) -> tuple[str, ...]:
        return (*self._root, *(_escape(label) for label in _labels(namespace)))

    def _backend(self) -> BaseStore:
        if self._store is None:
            raise ToolError(
                "this ToolContext has no memory: it was made outside a runtime; give the "
                "tool a ToolContext from AgentRuntime, or pass memory=Memory(...)"
            )
        return self._store

    def _writing(self, what: str, namespace: Namespace, key: str) -> None:
        if not self.writable:
            who = f"tool {self._tool!r}" if self._tool else "this tool"
            raise ToolError(
                f"{who} is declared effect='read', so it may read memory but not {what} "
                f"{'/'.join(_labels(namespace))}:{key!r}; declare it effect='write' "
                "(its calls then pass policy, approvals and the ledger)"
            )
        _check_key(key)

    def _no_credential(self, namespace: Namespace, key: str) -> None:
        """ToolError if ``namespace`` or ``key`` holds one of the call's credentials.
        Refused, not cut out as from a value: a key cut to the marker is not the key the
        tool (or its model) asks for later, and two credentials cut alike would share one
        item."""
        # The labels joined, as they are shown: a credential with a "/" spans two.
        for what, text in (("namespace", "/".join(_labels(namespace))), ("key", key)):
            names = self._secrets.held_in(text)
            if names:
                raise ToolError(
                    f"the memory {what} {self._secrets.scrub(text)!r} holds the value of "
                    f"credential {names[0]!r}; keys and namespaces are kept and shown as they "
                    "are, so name the item by something that is not secret (a customer id)"
                )

    def _item(self, item: Item) -> MemoryItem:
        return self._item_under(item, len(self._root))

    def _item_under(self, item: Item, depth: int) -> MemoryItem:
        return MemoryItem(
            namespace=tuple(_unescape(label) for label in item.namespace[depth:]),
            key=item.key,
            value=dict(item.value),
            created_at=_utc(item.created_at),
            updated_at=_utc(item.updated_at),
            principal=self.principal if self.is_personal else None,
        )

    def get(self, namespace: Namespace, key: str) -> MemoryItem | None:
        """The item at ``namespace``/``key``, or None."""
        _check_key(key)
        found = self._backend().get(self._where(namespace), key)
        return None if found is None else self._item(found)

    def search(
        self,
        namespace: Namespace = (),
        *,
        filter: Mapping[str, Any] | None = None,
        limit: int = 10,
        offset: int = 0,
    ) -> list[MemoryItem]:
        """Items under ``namespace`` (and the namespaces below it), the latest first;
        ``filter`` keeps those whose value has these fields equal."""
        where = self._where(namespace)
        found = self._backend().search(where, filter=dict(filter or {}), limit=limit, offset=offset)
        # Label by label, whatever the store's own prefix match does: "al" is no prefix
        # of "alice", nor "acme" of "acme2".
        return [self._item(item) for item in found if item.namespace[: len(where)] == where]

    def put(self, namespace: Namespace, key: str, value: Mapping[str, Any]) -> None:
        """Remember ``value`` (a JSON object) at ``namespace``/``key``, replacing what was."""
        self._writing("write", namespace, key)
        self._no_credential(namespace, key)
        where = f"{'/'.join(_labels(namespace))}:{key!r}"
        if not isinstance(value, Mapping):
            raise ToolError(
                f"the memory value for {where} must be a JSON object (a dict), got a "
                f"{type(value).__name__}: {_shown(value)}; wrap it, e.g. {{'value': ...}}"
            )
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ToolError(
                f"the memory value for {where} must be JSON data (text, numbers, true/false, "
                f"null, lists and objects): {exc}"
            ) from None
        # Refused on every backend alike: PostgreSQL's jsonb holds neither, so SQLite
        # keeping one would make memory a backend's choice.
        if found := _not_text(value, ""):
            raise ToolError(
                f"the memory value for {where} cannot be kept: {found}; remove it or replace "
                "it (e.g. with U+FFFD) before putting the value"
            )
        # A credential the tool writes would come back, unmasked, to whoever reads it.
        value = self._secrets.scrub(dict(value))
        self._backend().put(self._where(namespace), key, value, index=False)

    def delete(self, namespace: Namespace, key: str) -> bool:
        """Forget ``namespace``/``key``; False if there was nothing there."""
        self._writing("delete", namespace, key)
        where = self._where(namespace)
        store = self._backend()
        if store.get(where, key) is None:
            return False
        store.delete(where, key)
        return True

    # An async tool awaits these: the store's calls run on a worker thread, so the tool
    # loop goes on serving other calls meanwhile.

    async def aget(self, namespace: Namespace, key: str) -> MemoryItem | None:
        """``get``, awaited."""
        return await asyncio.to_thread(self.get, namespace, key)

    async def asearch(
        self,
        namespace: Namespace = (),
        *,
        filter: Mapping[str, Any] | None = None,
        limit: int = 10,
        offset: int = 0,
    ) -> list[MemoryItem]:
        """``search``, awaited."""
        return await asyncio.to_thread(
            lambda: self.search(namespace, filter=filter, limit=limit, offset=offset)
        )

    async def aput(self, namespace: Namespace, key: str, value: Mapping[str, Any]) -> None:
        """``put``, awaited."""
        await asyncio.to_thread(self.put, namespace, key, value)

    async def adelete(self, namespace: Namespace, key: str) -> bool:
        """``delete``, awaited."""
        return await asyncio.to_thread(self.delete, namespace, key)

    def __repr__(self) -> str:
        whose = f", personal to {self.principal!r}" if self.is_personal else ""
        mode = "" if self.writable else ", read-only"
        return f"Memory(tenant={self.tenant!r}{whose}{mode})"


def memory_for(store: BaseStore | None, tenant: str | None, principal: str | None = None) -> Memory:
    """Tenant ``tenant``'s memory as a person reaches it (``rt.memory``, the CLI): its
    shared items, or given ``principal``, that principal's own; ConfigError naming an
    empty tenant or principal, which would otherwise be no one's label or the shared view."""
    # Checked here, where a person names them, not in Memory: a run whose principal's
    # tenant is "" still gets a tool context (its memory calls fail as before).
    for what, label in (("tenant", tenant), ("principal", principal)):
        if label is not None:
            _check_label(what, label)
    return Memory(store, tenant=tenant, principal=principal, personal=principal is not None)


_NONE_IS = {
    "tenant": "the items of runs without a tenant",
    "principal": "the tenant's shared items",
}


def _check_label(what: str, value: object) -> None:
    """ConfigError naming ``value`` unless it can be a label of the layout (a tenant's or
    a principal's): non-empty text without NUL."""
    if not isinstance(value, str) or not value or "\x00" in value:
        raise ConfigError(
            f"memory {what} {value!r} is not usable: give non-empty text without NUL, or "
            f"None for {_NONE_IS[what]}"
        )


def _labels(namespace: Namespace) -> tuple[str, ...]:
    """parse_namespace, failing the tool's call (ToolError) on a bad namespace."""
    try:
        return parse_namespace(namespace)
    except ValueError as exc:
        raise ToolError(str(exc)) from None


def _check_key(key: object) -> None:
    if not isinstance(key, str) or not key:
        raise ToolError(
            f"a memory key must be non-empty text, got {_shown(key)}; name the item, "
            "e.g. 'customer-42'"
        )
    if found := _not_text(key, "the key"):
        raise ToolError(
            f"a memory key must be text, got {_shown(key)}: {found}; name the item by "
            "text without it, e.g. 'customer-42'"
        )


def _not_text(value: object, path: str) -> str | None:
    """Where in ``value`` (a JSON value) a string holds what is not text, a NUL or a lone
    surrogate, in words; None if nowhere. JSON escapes both, so json.dumps passes them."""
    if isinstance(value, str):
        if "\x00" in value:
            return f"{path or 'the value'} holds a NUL character (U+0000), which is not text"
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            bad = value[exc.start : exc.end]
            return f"{path or 'the value'} holds {bad!r}, which is not text (a lone surrogate)"
        return None
    if isinstance(value, Mapping):
        for key, item in value.items():
            found = _not_text(key, f"a key of {path or 'the value'}") or _not_text(
                item, f"{path}.{key}" if path else str(key)
            )
            if found:
                return found
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            if found := _not_text(item, f"{path}[{i}]"):
                return found
    return None


def _utc(moment: datetime) -> datetime:
    """``moment`` in UTC, with its zone: SqliteStore gives naive UTC times, PostgresStore
    aware ones, and a tool compares either with datetime.now(UTC)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


def tenant_items(
    store: BaseStore,
    tenant: str | None,
    namespace: Namespace = (),
    *,
    principal: str | None = None,
    everyone: bool = False,
    limit: int = 100,
) -> list[MemoryItem]:
    """A tenant's items for a person (``agentrt memory list``): its shared items under
    ``namespace``, or ``principal``'s own, or (``everyone``) the shared and every
    principal's own items together. ConfigError for an empty tenant or principal."""
    asked = memory_for(store, tenant, principal)
    if not everyone:
        return asked.search(namespace, limit=limit)
    top = memory_root(tenant)[:-1]
    # Each root (the shared one, each principal's own) is searched under ``namespace`` on
    # its own: one search of the whole tenant would cut at ``limit`` before the namespace
    # is looked at, and miss older items of the namespace asked for.
    items: list[MemoryItem] = []
    for root in _roots(store, top):
        whose = None if root[len(top)] == "shared" else _unescape(root[len(top) + 1])
        view = Memory(store, tenant=tenant, principal=whose, personal=whose is not None)
        items.extend(view.search(namespace, limit=limit))
    items.sort(key=lambda item: item.updated_at, reverse=True)
    return items[:limit]


def _roots(store: BaseStore, top: tuple[str, ...], page: int = 1000) -> list[tuple[str, ...]]:
    """The roots under a tenant's ``top`` that hold items: shared, and each principal's."""
    roots: set[tuple[str, ...]] = set()
    offset = 0
    while True:
        found = store.list_namespaces(prefix=top, max_depth=len(top) + 2, limit=page, offset=offset)
        for namespace in found:
            if namespace[: len(top)] != top or len(namespace) == len(top):
                continue  # another tenant's, however the store matched the prefix
            if namespace[len(top)] == "shared":
                roots.add((*top, "shared"))
            elif namespace[len(top)] == "principals" and len(namespace) > len(top) + 1:
                roots.add(namespace[: len(top) + 2])
        if len(found) < page:
            return sorted(roots)
        offset += page
