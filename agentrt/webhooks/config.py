"""Where events go: webhook endpoints, each a tenant's (or every tenant's), with its filter,
its secret and how long it is retried; read from Python or from a YAML file.

A secret is never written in the file: the file names the environment variable that
holds it (``secret_env``), read when the file is loaded. Secrets and endpoint URLs (a URL
may carry a token in its path) are kept out of every repr, log line and stored error:
deliveries are named by the endpoint's ``name``.
"""

from __future__ import annotations

import base64
import fnmatch
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agentrt.errors import ConfigError
from agentrt.policies.loader import duplicate_key, locate
from agentrt.store.outbox import EVENT_TYPES, OutboxEvent
from agentrt.urls import hidden_password

__all__ = ["ALL_TENANTS", "RetrySchedule", "WebhookEndpoint", "Webhooks", "shown_url"]

ALL_TENANTS = "*"
"""An endpoint's tenant that receives every tenant's events (an operator's endpoint)."""

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def shown_url(url: str) -> str:
    """``url`` as messages show it: scheme and host only (a path may hold a token, the
    authority a password); a port that is no number left out, and no part of a URL that
    cannot be taken apart shown."""
    try:
        parts = urlsplit(url)
    except ValueError:  # a bracket left open
        scheme = url.split("://", 1)[0] if "://" in url else ""
        return f"{scheme}://..." if scheme.isalnum() else "..."
    try:
        port = parts.port
    except ValueError:  # a port that is not a number
        port = None
    return f"{parts.scheme}://{parts.hostname or ''}{f':{port}' if port else ''}/..."


@dataclass(frozen=True, slots=True, kw_only=True)
class RetrySchedule:
    """How a delivery that failed is tried again: exponential backoff with jitter, then the
    dead letter. The defaults try for about six hours over 15 sends."""

    first_delay: float = 5.0
    """Seconds before the second send."""
    factor: float = 2.0
    """Each wait is this many times the one before."""
    max_delay: float = 3600.0
    """No wait is longer than this."""
    jitter: float = 0.25
    """Each wait is shortened by up to this fraction at random, so receivers that came back
    are not met by every sender at once."""
    max_attempts: int = 15
    """After this many failed sends the delivery is dead (listed, retried by hand)."""

    def __post_init__(self) -> None:
        numbers = (self.first_delay, self.factor, self.max_delay, self.jitter)
        if not all(math.isfinite(n) for n in numbers):  # NaN compares false: said apart
            raise ConfigError(
                "retry needs finite numbers, got "
                f"first_delay={self.first_delay!r}, factor={self.factor!r}, "
                f"max_delay={self.max_delay!r}, jitter={self.jitter!r}"
            )
        if self.first_delay <= 0 or self.factor < 1 or self.max_delay < self.first_delay:
            raise ConfigError(
                "retry needs first_delay > 0, factor >= 1 and max_delay >= first_delay, got "
                f"first_delay={self.first_delay!r}, factor={self.factor!r}, "
                f"max_delay={self.max_delay!r}"
            )
        if not 0 <= self.jitter < 1 or self.max_attempts < 1:
            raise ConfigError(
                f"retry needs 0 <= jitter < 1 and max_attempts >= 1, got "
                f"jitter={self.jitter!r}, max_attempts={self.max_attempts!r}"
            )

    def delay(self, attempts: int, rand: float) -> float:
        """Seconds to wait after the ``attempts``-th failed send; ``rand`` in [0, 1)."""
        base = min(self.max_delay, self.first_delay * self.factor ** max(0, attempts - 1))
        return base * (1 - self.jitter * rand)


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookEndpoint:
    """One receiver of events: a tenant's, or every tenant's (``tenant="*"``)."""

    name: str
    """Names it in deliveries, the CLI, the API and logs (its URL is never shown)."""
    url: str = field(repr=False)
    """Where events are POSTed (http or https)."""
    secret: str = field(repr=False)
    """The signing key: ``whsec_`` and base64 (as Standard Webhooks writes it), or any
    other text, whose UTF-8 bytes are the key."""
    tenant: str
    """Whose events it receives; "*" for every tenant's (and runs without one)."""
    events: tuple[str, ...] = ("*",)
    """Which event types, as globs ("approval.*", "run.failed")."""
    timeout: float = 10.0
    """Seconds one send may take."""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ConfigError(
                f"webhook endpoint name {self.name!r} must be 1-64 letters, digits, '.', '_' "
                "or '-' (it names the endpoint's deliveries)"
            )
        if not isinstance(self.url, str):
            raise ConfigError(
                f"webhook endpoint {self.name!r}: url must be text, got a {type(self.url).__name__}"
            )
        # The URL itself is never said (its path may hold a token, its authority a
        # password): shown_url's scheme and host, and where the problem is.
        bad = next((i for i, c in enumerate(self.url) if c == " " or not c.isprintable()), None)
        if bad is not None:
            # urlsplit drops a newline or a tab without a word (a YAML block's last line
            # break), and the HTTP client then refuses the URL at every send.
            raise ConfigError(
                f"webhook endpoint {self.name!r}: url {shown_url(self.url)!r} holds a space "
                f"or a control character ({self.url[bad]!r} at character {bad + 1}; a line "
                "break?); give the URL alone"
            )
        try:
            parts = urlsplit(self.url)
            parts.port  # noqa: B018 (a port that is not a number raises here)
        except ValueError as exc:
            raise ConfigError(
                f"webhook endpoint {self.name!r}: url {shown_url(self.url)!r} is not a URL ({exc})"
            ) from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"webhook endpoint {self.name!r}: url must be an http(s) URL with a host"
            )
        if not isinstance(self.secret, str) or len(self.secret) < 16:
            raise ConfigError(
                f"webhook endpoint {self.name!r}: the secret must be at least 16 characters; "
                'make one with `python -c \'import secrets; print("whsec_" + '
                '__import__("base64").b64encode(secrets.token_bytes(32)).decode())\'`'
            )
        if self.secret.startswith("whsec_"):
            try:
                base64.b64decode(self.secret.removeprefix("whsec_"), validate=True)
            except ValueError:
                raise ConfigError(
                    f"webhook endpoint {self.name!r}: a secret starting whsec_ must be "
                    "base64 after the prefix"
                ) from None
        if not isinstance(self.tenant, str) or not self.tenant:
            raise ConfigError(
                f"webhook endpoint {self.name!r}: tenant must name a tenant, or be '*' for "
                f"every tenant's events, got {self.tenant!r}"
            )
        if isinstance(self.events, str):
            raise ConfigError(
                f"webhook endpoint {self.name!r}: events must be a list of globs, got "
                f"{self.events!r}"
            )
        if not self.events:
            raise ConfigError(
                f"webhook endpoint {self.name!r}: events is empty, so it would receive "
                "nothing; leave it out for every event, or name some"
            )
        for pattern in self.events:
            if not any(fnmatch.fnmatchcase(t, pattern) for t in EVENT_TYPES):
                raise ConfigError(
                    f"webhook endpoint {self.name!r}: event filter {pattern!r} matches no "
                    f"event type; the types are {', '.join(EVENT_TYPES)}"
                )
        if not math.isfinite(self.timeout) or self.timeout <= 0:
            raise ConfigError(
                f"webhook endpoint {self.name!r}: timeout must be a finite number of seconds "
                f"> 0, got {self.timeout!r}"
            )

    @property
    def key(self) -> bytes:
        """The HMAC key the secret stands for."""
        if self.secret.startswith("whsec_"):
            return base64.b64decode(self.secret.removeprefix("whsec_"))
        return self.secret.encode()

    def takes(self, event: OutboxEvent) -> bool:
        """True if this endpoint receives ``event``: its tenant's, of a type it asked for.
        A tenant's endpoint never receives another tenant's events, nor a run's that has
        no tenant."""
        if self.tenant not in (ALL_TENANTS, event.tenant):
            return False
        return any(fnmatch.fnmatchcase(event.type, p) for p in self.events)


@dataclass(frozen=True, slots=True, kw_only=True)
class Webhooks:
    """Every endpoint of a runtime, where links point, and how failed sends are retried.

    ``AgentRuntime(webhooks=Webhooks(...))`` or ``Webhooks.from_file("webhooks.yaml")``.
    """

    endpoints: tuple[WebhookEndpoint, ...] = ()
    """Where events go."""
    public_url: str | None = None
    """The service's address as reviewers reach it (https://agents.example.com): events
    about a request carry a link to it on the review page. None: no links."""
    retry: RetrySchedule = field(default_factory=RetrySchedule)
    """Backoff, jitter and when a delivery is given up (the dead letter)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "endpoints", tuple(self.endpoints))
        names = [e.name for e in self.endpoints]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ConfigError(f"webhook endpoint names must differ; given twice: {twice!r}")
        if self.public_url is not None:
            parts = urlsplit(self.public_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigError(
                    f"webhooks public_url must be the service's http(s) address, got "
                    f"{hidden_password(self.public_url)!r}"
                )

    @classmethod
    def of(cls, given: object) -> Webhooks:
        """``given`` checked as a runtime's webhooks= argument (None: no endpoints)."""
        if given is None:
            return cls()
        if not isinstance(given, Webhooks):
            raise ConfigError(f"webhooks must be an agentrt Webhooks, got {given!r}")
        return given

    def endpoint(self, name: str) -> WebhookEndpoint:
        """The endpoint named ``name``; ConfigError naming those there are if none."""
        for endpoint in self.endpoints:
            if endpoint.name == name:
                return endpoint
        raise ConfigError(
            f"no webhook endpoint is named {name!r}; this app has "
            f"{[e.name for e in self.endpoints]!r}"
        )

    @classmethod
    def from_file(cls, path: str | Path, *, environ: Mapping[str, str] | None = None) -> Webhooks:
        """Read a webhooks YAML file; secrets come from the variables it names in
        ``environ`` (os.environ by default). ConfigError names file:line for a bad field."""
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read webhooks file {source!r}: {exc.strerror}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"webhooks file {source!r} is not UTF-8 text (byte {exc.start}); save it as UTF-8"
            ) from None
        return cls.from_yaml(text, source=source, environ=environ)

    @classmethod
    def from_yaml(
        cls, text: str, *, source: str = "<webhooks>", environ: Mapping[str, str] | None = None
    ) -> Webhooks:
        """As from_file, from the file's text."""
        env = os.environ if environ is None else environ
        try:
            node = yaml.compose(text)
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{source}:{mark.line + 1}" if mark else source
            raise ConfigError(f"{where}: not valid YAML: {exc}") from None
        duplicate = duplicate_key(node)
        if duplicate is not None:
            raise ConfigError(f"{source}:{duplicate.line}: {duplicate.problem()}")
        try:
            parsed = _File.model_validate(data or {})
        except ValidationError as exc:
            first = exc.errors()[0]
            at = locate(node, [str(p) if isinstance(p, str) else p for p in first["loc"]])
            where = f"{source}:{at.start_mark.line + 1}" if at is not None else source
            path = ".".join(str(p) for p in first["loc"])
            raise ConfigError(f"{where}: {path}: {first['msg']}") from None
        endpoints = []
        for index, e in enumerate(parsed.endpoints):
            secret = env.get(e.secret_env)
            if not secret:
                raise ConfigError(
                    f"{source}: endpoints[{index}] ({e.name!r}): the environment variable "
                    f"{e.secret_env!r} holding its secret is not set"
                )
            try:
                endpoints.append(
                    WebhookEndpoint(
                        name=e.name,
                        url=e.url,
                        secret=secret,
                        tenant=e.tenant,
                        events=tuple(e.events),
                        timeout=e.timeout,
                    )
                )
            except ConfigError as exc:
                at = locate(node, ["endpoints", index])
                where = f"{source}:{at.start_mark.line + 1}" if at is not None else source
                raise ConfigError(f"{where}: endpoints[{index}]: {exc}") from None
        retry = RetrySchedule(**parsed.retry.model_dump()) if parsed.retry else RetrySchedule()
        return cls(endpoints=tuple(endpoints), public_url=parsed.public_url, retry=retry)


class _Endpoint(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    url: str
    secret_env: str
    tenant: str
    events: list[str] = Field(default_factory=lambda: ["*"])
    timeout: float = 10.0


class _Retry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    first_delay: float = 5.0
    factor: float = 2.0
    max_delay: float = 3600.0
    jitter: float = 0.25
    max_attempts: int = 15


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")
    public_url: str | None = None
    endpoints: list[_Endpoint] = Field(default_factory=list)
    retry: _Retry | None = None
