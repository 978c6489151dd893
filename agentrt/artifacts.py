"""Artifacts: files and large results a run keeps once, by content, and refers to.

A tool's report, CSV, screenshot or 10 MB API response is stored once in the store, keyed
by its sha256; the run's state, the ledger, spans and the model see only an ArtifactRef
(a name, a media type, a size, the digest and a short preview the tool chose). The same
content put twice, by one run or many, is stored once.

The reference's JSON form is its fields and nothing else (``ArtifactRef.to_json``), so a
result that is a reference is told apart from any other result by its keys alone.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from agentrt.errors import AgentRuntimeError, ConfigError

__all__ = [
    "PREVIEW_CHARS",
    "ArtifactRecord",
    "ArtifactRef",
    "UnknownArtifact",
    "artifact_digest",
    "check_name",
    "is_artifact_ref",
    "preview_of",
]

PREVIEW_CHARS = 200
"""Characters of a preview the runtime makes (a tool may give its own, up to this)."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,199}")
_FIELDS = frozenset({"name", "media_type", "size", "digest", "preview"})


@dataclass(frozen=True, kw_only=True, slots=True)
class ArtifactRef:
    """What a run keeps of an artifact: enough to name it, judge it and fetch it."""

    name: str
    """Unique within its run; a file name (letters, digits, '.', '_', '-')."""
    media_type: str
    """What the content is, as an HTTP Content-Type says it (``text/csv``)."""
    size: int
    """Bytes of content."""
    digest: str
    """sha256 of the content, in hex: where the store keeps it."""
    preview: str = ""
    """A short text the tool chose (or the first characters of a text result): what the
    model reads instead of the content."""

    def to_json(self) -> dict[str, Any]:
        """The reference as the ledger, state, spans and the model see it."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> ArtifactRef:
        """A reference from its JSON form; ValueError if ``data`` is not one."""
        if not is_artifact_ref(data):
            raise ValueError(f"not an artifact reference: {data!r:.200}")
        return cls(**data)


@dataclass(frozen=True, kw_only=True, slots=True)
class ArtifactRecord:
    """An artifact as the store lists it: its reference and the run it belongs to."""

    thread_id: str
    """The run that made it."""
    ref: ArtifactRef
    """Its name, media type, size, digest and preview."""
    tenant: str | None = None
    """The run's tenant, for the same checks as the run's."""
    step_id: str | None = None
    """The plan step whose tool made it (None: put outside a tool call)."""
    created_at: float = 0.0
    """Epoch seconds it was (last) put."""


class UnknownArtifact(AgentRuntimeError, KeyError):
    """No artifact of this name in this run, or none of the content a reference names."""

    def __init__(
        self,
        thread_id: str,
        name: str,
        *,
        known: Sequence[str] | None = None,
        digest: str | None = None,
    ) -> None:
        self.thread_id = thread_id
        self.name = name
        self.digest = digest
        """The digest the reference named, where the name now holds other content."""
        if digest is not None:  # said to a tool (and its model)
            message = (
                f"this run's artifact {name!r} no longer holds the content this reference "
                f"names (sha256 {digest[:12]}...): it was put again since; use the reference "
                "its latest put returned, or its name for what it holds now"
            )
        elif known is None:
            message = (
                f"run {thread_id!r} has no artifact named {name!r}; list its artifacts with "
                f"rt.artifacts({thread_id!r}) or `agentrt artifacts {thread_id}`"
            )
        else:  # said to a tool (and its model): the run's own names, no ids
            message = f"this run has no artifact named {name!r}; " + (
                f"it has {', '.join(map(repr, known))}" if known else "it has none yet"
            )
        super().__init__(message)

    def __str__(self) -> str:  # KeyError would quote the message again
        return str(self.args[0])


def artifact_digest(content: bytes) -> str:
    """The key an artifact's content is stored by: its sha256, in hex."""
    return hashlib.sha256(content).hexdigest()


def check_name(name: object) -> str:
    """``name`` if it can name an artifact (it goes in URLs and file names), else ConfigError."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(
            f"artifact name {name!r} is not usable: give 1 to 200 letters, digits, '.', '_' "
            "or '-', starting with a letter or digit (report.csv, page-2.png)"
        )
    return name


def is_artifact_ref(value: Any) -> bool:
    """True if ``value`` is an artifact reference in its JSON form."""
    return (
        isinstance(value, dict)
        and value.keys() == _FIELDS
        and isinstance(value["name"], str)
        and isinstance(value["digest"], str)
        and isinstance(value["size"], int)
    )


def preview_of(text: str, limit: int = PREVIEW_CHARS) -> str:
    """The first ``limit`` characters of ``text``, marked as cut if it was longer."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
