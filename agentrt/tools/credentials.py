"""Scoped credentials: what a tool needs to reach another system, given only to that tool.

A tool declares the credentials it needs (``@tool(credentials=["crm"])``); the runtime's
provider (``AgentRuntime(credentials=Credentials.from_env())``) resolves them at each call
for the run's principal and tenant, and the tool reads them from ``ctx.credentials``.
Nothing is kept past the call (or past the provider's ``ttl``), so a rotated secret is used
from the next call on, with no restart.

The values never leave the call: whatever the tool returns or raises has them cut out
before it is kept (state, ledger, spans, the model), and the runtime's Redactor is told
them, so a log line or a page that repeats one shows a marker instead.
"""

from __future__ import annotations

import math
import os
import re
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic_core import to_jsonable_python

from agentrt.errors import AgentRuntimeError, ConfigError
from agentrt.principal import Principal
from agentrt.redaction import MIN_KNOWN, Redactor, free_key, secrets_pattern
from agentrt.state import storable_text

__all__ = [
    "CREDENTIAL_MARKER",
    "CredentialError",
    "Credentials",
    "Secrets",
    "check_provider",
    "env_name",
    "resolve_for",
]

CREDENTIAL_MARKER = "[REDACTED:credential]"
"""What a credential's value becomes wherever a tool's result or error repeats it."""

Fetch = Callable[[str, Principal], "str | None"]
"""A provider's lookup: the credential's name and the run's principal (its tenant on it)
-> the value, or None if it has none for them."""


class CredentialError(AgentRuntimeError):
    """A credential a tool needs could not be resolved: the tool was not called."""

    def __init__(self, name: str, tool: str, principal: Principal, why: str) -> None:
        self.name = name
        self.tool = tool
        # ``why`` may be a provider's own error (a vault's raw answer): the run keeps this
        # message as the call's observation, so it is made text here.
        super().__init__(
            f"credential {name!r} for tool {tool!r} could not be resolved for principal "
            f"{principal.id!r} of tenant {principal.tenant!r}: {storable_text(why)}; the "
            "tool was not called"
        )


@dataclass(frozen=True, kw_only=True)
class Credentials:
    """Where a runtime's tools get their credentials, resolved at each call.

    Build one with ``from_env``, ``from_file`` or ``from_callable`` (a vault client).
    """

    fetch: Fetch
    """Looks one credential up for a principal; None if there is none for it."""
    source: str = "a callable"
    """What the provider reads, in words, for error messages."""
    ttl: float = 0.0
    """Seconds a resolved value may be used again for the same principal (its id, tenant,
    roles and scopes alike) before it is fetched anew; 0: fetched at every call."""
    clock: Callable[[], float] = time.monotonic
    """Seconds, for ttl; injected by tests."""
    _kept: dict[tuple[str, Principal], tuple[float, str]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    _lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not callable(self.fetch):
            raise ConfigError(
                f"Credentials fetch must be callable, got {self.fetch!r}; give a function "
                "(name, principal) -> value, e.g. Credentials.from_callable(vault_lookup)"
            )
        ttl = self.ttl
        if isinstance(ttl, bool) or not (isinstance(ttl, int | float) and 0 <= ttl < math.inf):
            raise ConfigError(
                f"Credentials ttl must be a number of seconds >= 0, got {ttl!r}; "
                "0 fetches the value at every call"
            )

    @classmethod
    def from_env(
        cls, prefix: str = "AGENTRT_CREDENTIAL_", *, environ: Mapping[str, str] | None = None
    ) -> Credentials:
        """From environment variables, read at each call: ``<prefix><TENANT>__<NAME>`` for
        one tenant, else ``<prefix><NAME>``, e.g. AGENTRT_CREDENTIAL_ACME__CRM, then
        AGENTRT_CREDENTIAL_CRM for credential "crm" of tenant "acme".

        A name of lower-case letters and digits, words joined by single "_", is spelled in
        upper case (``stripe_key``: STRIPE_KEY). Any other name (``acme.io``, ``Acme``,
        ``acme-io``) is spelled "_" and the hex of its UTF-8 bytes (``acme.io``:
        _61636D652E696F), so two tenants never share a variable; a missing value's error
        names the variables read. ``env_name`` spells one."""

        def fetch(name: str, principal: Principal) -> str | None:
            env = os.environ if environ is None else environ
            tried = _env_vars(prefix, name, principal.tenant)
            for var in tried:
                if env.get(var):
                    return env[var]
            raise LookupError(f"no value for it in the environment: set {' or '.join(tried)}")

        return cls(fetch=fetch, source=f"environment variables {prefix}*")

    @classmethod
    def from_file(cls, path: str | Path) -> Credentials:
        """From a JSON or YAML file, read at each call (so rewriting it rotates them):
        ``{"crm": "...", "tenants": {"acme": {"crm": "..."}}}``, a tenant's own first."""
        where = Path(path)

        def fetch(name: str, principal: Principal) -> str | None:
            try:
                data = yaml.safe_load(where.read_text()) or {}
            except OSError as exc:
                raise OSError(f"cannot read {str(where)!r}: {exc.strerror}") from None
            except yaml.YAMLError:
                raise ValueError(f"{str(where)!r} is not JSON or YAML") from None
            if not isinstance(data, dict):
                raise ValueError(
                    f"{str(where)!r} holds a {type(data).__name__}; it must hold a mapping of "
                    'names to values, e.g. {"crm": "...", "tenants": {"acme": {"crm": "..."}}}'
                )
            tenants = data.get("tenants") or {}
            own = tenants.get(principal.tenant) if isinstance(tenants, dict) else None
            for scope, at in ((own or {}, f"tenants.{principal.tenant}.{name}"), (data, name)):
                value = scope.get(name) if isinstance(scope, dict) else None
                if value is None or value == "":
                    continue
                if not isinstance(value, str):
                    raise ValueError(
                        f"{at} in {str(where)!r} is a {type(value).__name__}, not text; "
                        "quote it in the file"
                    )
                return value
            return None

        return cls(fetch=fetch, source=f"file {str(where)!r}")

    @classmethod
    def from_callable(
        cls, fetch: Fetch, *, ttl: float = 0.0, clock: Callable[[], float] = time.monotonic
    ) -> Credentials:
        """From ``fetch(name, principal)`` (a vault client, say): called at each call, or
        once a ``ttl`` for the same name and principal (id, tenant, roles and scopes)."""
        return cls(fetch=fetch, ttl=ttl, clock=clock)

    def resolve(self, name: str, principal: Principal) -> str:
        """The value of ``name`` for ``principal``; LookupError if the provider has none,
        or what the provider raised."""
        # Keyed on all fetch is handed: a vault may answer by role or scope, and the same
        # id with fewer of them must not get the value fetched for more.
        key = (name, principal)
        if self.ttl:
            with self._lock:
                kept = self._kept.get(key)
            if kept is not None and self.clock() < kept[0]:
                return kept[1]
        value = self.fetch(name, principal)
        if value is None or value == "":
            raise LookupError(f"no value for it in {self.source}")
        if not isinstance(value, str):
            raise TypeError(f"{self.source} gave a {type(value).__name__}, not text")
        if self.ttl:
            self._keep(key, value)
        return value

    def _keep(self, key: tuple[str, Principal], value: str) -> None:
        """Keep ``value`` for a ttl, letting go of what has expired: a server sees many
        principals over its life, and their values must not stay in memory for good."""
        now = self.clock()
        with self._lock:
            kept = self._kept
            kept.pop(key, None)  # to the end: with one ttl, the order is that of expiry
            while kept:
                first = next(iter(kept))
                if kept[first][0] > now and len(kept) < KEPT_AT_MOST:
                    break
                del kept[first]
            kept[key] = (now + self.ttl, value)


KEPT_AT_MOST = 4096
"""Values a Credentials with a ttl keeps at once; past it, those nearest expiry go first."""

_PLAIN = re.compile(r"[a-z0-9]+(?:_[a-z0-9]+)*")


def env_name(name: str) -> str:
    """How ``from_env`` spells a tenant or credential name in a variable: a plain name
    (lower-case letters and digits, single "_" between words) in upper case, any other
    "_" and the hex of its UTF-8 bytes. No two names share a spelling: a plain one has
    no "__" and never starts with "_", a hex one has no "_" after its first."""
    if _PLAIN.fullmatch(name):
        return name.upper()
    return "_" + name.encode("utf-8").hex().upper()


def _env_vars(prefix: str, name: str, tenant: str | None) -> list[str]:
    """The variables ``from_env`` reads for ``name``: the tenant's own first."""
    shared = f"{prefix}{env_name(name)}"
    return [f"{prefix}{env_name(tenant)}__{env_name(name)}", shared] if tenant else [shared]


class Secrets(Mapping[str, str]):
    """The credentials of one call, by name: ``ctx.credentials["crm"]``. Its repr names
    them and never shows a value."""

    def __init__(self, values: Mapping[str, str] | None = None, *, tool: str | None = None):
        self._values = dict(values or {})
        self._tool = tool

    def __getitem__(self, name: str) -> str:
        try:
            return self._values[name]
        except KeyError:
            who = f"tool {self._tool!r}" if self._tool else "this tool"
            raise KeyError(
                f"{who} has no credential {name!r}; declare it: @tool(credentials=[{name!r}]) "
                f"(it has {sorted(self._values)!r})"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Secrets({sorted(self._values)!r})"

    def scrub(self, value: Any) -> Any:
        """``value`` (JSON data or text) with every credential's value cut out, as it is and
        as JSON text or a URL spells it (``redaction.secret_forms``). A value shorter than
        MIN_KNOWN is not looked for: it would cut up unrelated words; the runtime refuses
        to resolve one."""
        pattern = secrets_pattern(self._values.values())
        return value if pattern is None else _scrub(value, pattern)

    def held_in(self, text: str) -> list[str]:
        """The names of the credentials whose value ``text`` holds, in any form ``scrub``
        cuts out; [] if none. For what is kept as it is, never scrubbed: a memory key,
        an artifact's name."""
        return [
            name
            for name, value in self._values.items()
            if (pattern := secrets_pattern([value])) is not None and pattern.search(text)
        ]


def _scrub(value: Any, pattern: re.Pattern[str]) -> Any:
    if isinstance(value, str):
        return pattern.sub(CREDENTIAL_MARKER, value)
    if isinstance(value, Mapping):
        out: dict[Any, Any] = {}
        for k, v in value.items():
            key = _scrub(k, pattern)
            # Two names cut to the same marker keep both their values.
            out[free_key(key, out) if isinstance(key, str) else key] = _scrub(v, pattern)
        return out
    if isinstance(value, list | tuple):
        return [_scrub(item, pattern) for item in value]
    if isinstance(value, bytes | bytearray):
        return _scrub(bytes(value).decode("utf-8", "replace"), pattern)
    if isinstance(value, int | float | bool) or value is None:
        return value
    # Not JSON: its JSON form, every field (a repr may hide one), cut if it holds one.
    # Compared, not searched for in a dump: json.dumps escapes the very characters
    # (non-ASCII, quotes, backslashes) a credential may hold.
    data = to_jsonable_python(value, fallback=str)
    scrubbed = _scrub(data, pattern)
    return scrubbed if scrubbed != data else value


_DETECTED = Redactor()
"""Cuts out of a provider's error what the default detectors find (tokens, keys, ...)."""


def resolve_for(
    tool: str,
    names: Collection[str],
    principal: Principal,
    provider: Credentials | None,
    *,
    remember: Callable[[Collection[str]], None] | None = None,
) -> Secrets:
    """The credentials ``tool`` declared, resolved now for ``principal``; CredentialError
    naming the first that cannot be (never its value). ``remember`` is told the values
    (the Redactor, so any echo of one is masked)."""
    values: dict[str, str] = {}
    for name in names:
        if provider is None:
            raise CredentialError(
                name, tool, principal, "the runtime has no credential provider (credentials=)"
            )
        try:
            value = provider.resolve(name, principal)
        except Exception as exc:  # any provider failure: the call does not happen
            # The provider's own words go to the model as the call's observation: a vault
            # client may quote its own token or a "password=" in them, which no Secrets
            # knows, so what the detectors find in them is cut out first.
            why = _DETECTED.redact_text(f"{type(exc).__name__}: {exc}")
            raise CredentialError(name, tool, principal, why) from None
        if len(value) < MIN_KNOWN:
            # Too short to find again: masking it would cut pieces out of unrelated text.
            raise CredentialError(
                name,
                tool,
                principal,
                f"its value in {provider.source} is {len(value)} characters, shorter than "
                f"{MIN_KNOWN}, so it could not be kept out of what the run shows; give the "
                "real secret",
            )
        values[name] = value
    if remember is not None and values:
        remember(values.values())
    return Secrets(values, tool=tool)


def check_provider(needs: Mapping[str, Collection[str]], provider: object) -> None:
    """ConfigError unless ``provider`` is Credentials (or None while no tool in ``needs``,
    tool name -> the credentials it declares, needs one)."""
    if provider is not None and not isinstance(provider, Credentials):
        raise ConfigError(
            f"credentials must be an agentrt Credentials (Credentials.from_env(), .from_file(), "
            f".from_callable()), got {provider!r}"
        )
    needing = {name: sorted(names) for name, names in needs.items() if names}
    if provider is None and needing:
        raise ConfigError(
            f"tools {needing!r} need credentials but the runtime has no provider; pass "
            "AgentRuntime(credentials=Credentials.from_env()) or another Credentials"
        )
