"""A run's artifacts as its tools see them (``ctx.artifacts``), and results made artifacts.

A tool puts a file (``ctx.artifacts.put("report.csv", data, media_type="text/csv",
preview="42 rows")``) and returns the ArtifactRef it gets, or gets one an earlier step
made (``ctx.artifacts.get("report.csv")``). A result past SizeLimits.inline_result_bytes is
put by the runtime itself (``result_artifact``): the ledger, the run's state, spans and
the model keep only the reference. Wherever a run's artifacts are listed for a person, each
reference is shown as the run's log shows its copy (``shown_ref``).
"""

from __future__ import annotations

import asyncio
import json
import mimetypes
import re
from collections.abc import Collection, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from agentrt.artifacts import (
    PREVIEW_CHARS,
    ArtifactRecord,
    ArtifactRef,
    UnknownArtifact,
    artifact_digest,
    check_name,
    is_artifact_ref,
    preview_of,
)
from agentrt.errors import ConfigError
from agentrt.limits import SizeLimits
from agentrt.redaction import Redactor
from agentrt.store.protocols import ArtifactStore
from agentrt.tools.errors import ToolError
from agentrt.tracing.shown import shown

if TYPE_CHECKING:
    from agentrt.tools.credentials import Secrets

__all__ = [
    "ToolArtifacts",
    "artifact_of",
    "call_stem",
    "refs_as_json",
    "result_artifact",
    "shown_ref",
]

_UNSHOWN = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_UNNAMEABLE = re.compile(r"[^A-Za-z0-9._\-]")


class ToolArtifacts:
    """One run's artifacts, for the tool call a ToolContext serves."""

    def __init__(
        self,
        store: ArtifactStore | None,
        thread_id: str,
        *,
        tenant: str | None = None,
        step_id: str | None = None,
        max_bytes: int = SizeLimits().result_bytes,
    ) -> None:
        self._store = store
        self.thread_id = thread_id
        self.tenant = tenant
        self.step_id = step_id
        self.max_bytes = max_bytes
        """Largest content a put takes (SizeLimits.result_bytes)."""
        self._secrets: Secrets | None = None

    def scrubbing(self, secrets: Secrets) -> ToolArtifacts:
        """These artifacts for one call, cutting ``secrets`` (its credentials) out of what
        it puts: the preview, and content that is text. Bytes that are not UTF-8 (an image,
        a PDF) are kept as the tool wrote them; a name that holds one is refused."""
        made = ToolArtifacts(
            self._store,
            self.thread_id,
            tenant=self.tenant,
            step_id=self.step_id,
            max_bytes=self.max_bytes,
        )
        made._secrets = secrets
        return made

    @property
    def store(self) -> ArtifactStore:
        """Where the artifacts are kept: the run's store (in memory for a ToolContext made
        by hand, as in a tool's own unit test; made at first use)."""
        if self._store is None:
            from agentrt.store.memory import MemoryStore

            self._store = MemoryStore()
        return self._store

    def put(
        self,
        name: str,
        data: bytes | str,
        *,
        media_type: str | None = None,
        preview: str | None = None,
    ) -> ArtifactRef:
        """Keep ``data`` as the run's artifact ``name`` (stored once by its sha256; a name
        put again names the new content) and return its reference, to return or pass on.

        ``media_type`` defaults from the name (``.csv`` is text/csv), else text/plain for
        text and application/octet-stream for bytes. ``preview`` is what the model reads
        instead of the content (cut to PREVIEW_CHARS); for text it defaults to its start.
        """
        if self._secrets is not None and isinstance(name, str):
            _no_credential(self._secrets, name)  # first: check_name's error would quote it
        check_name(name)
        if isinstance(data, str):
            content = data.encode("utf-8")
            text: str | None = data
        elif isinstance(data, bytes | bytearray | memoryview):
            content, text = bytes(data), None
        else:
            raise ConfigError(
                f"artifact {name!r}: data must be bytes or str, got {type(data).__name__}; "
                "serialize it first (json.dumps, a CSV writer)"
            )
        if self._secrets is not None:
            content, text, preview = _scrubbed(self._secrets, content, text, preview)
        if len(content) > self.max_bytes:
            raise ConfigError(
                f"artifact {name!r} is {len(content):,} bytes, over the runtime's limit of "
                f"{self.max_bytes:,} (SizeLimits.result_bytes); keep less, or raise the limit"
            )
        media_type = media_type or _media_type(name, text is not None)
        if text is None and preview is None and _textual(media_type):
            text = content[: PREVIEW_CHARS * 4].decode("utf-8", errors="replace")
        ref = ArtifactRef(
            name=name,
            media_type=media_type,
            size=len(content),
            digest=artifact_digest(content),
            preview=_shown(preview if preview is not None else preview_of(text or "")),
        )
        record = ArtifactRecord(
            thread_id=self.thread_id, ref=ref, tenant=self.tenant, step_id=self.step_id
        )
        self.store.put_artifact(record, content)
        return ref

    def get(self, ref: ArtifactRef | Mapping[str, Any] | str) -> bytes:
        """The content of this run's artifact ``ref``: for a reference (or its JSON form),
        the content its digest names, which a name put again since no longer holds; for a
        name, what it holds now. UnknownArtifact if the run has none of that name, or
        refers to that content no more."""
        name, digest = _name_of(ref), _digest_of(ref)
        record = self.store.get_artifact(self.thread_id, name)
        if record is not None and digest is not None and record.ref.digest != digest:
            # Put again (by another tool, or code it ran) since this reference was made:
            # its content is still the run's if another of its names refers to it.
            held = any(a.ref.digest == digest for a in self.store.list_artifacts(self.thread_id))
            if not held:
                raise UnknownArtifact(self.thread_id, name, digest=digest)
        content = None
        if record is not None:
            content = self.store.artifact_content(digest or record.ref.digest)
        if content is None:
            known = [a.ref.name for a in self.store.list_artifacts(self.thread_id)]
            raise UnknownArtifact(self.thread_id, name, known=known)
        return content

    def list(self) -> list[ArtifactRef]:
        """The run's artifacts so far, by name."""
        return [a.ref for a in self.store.list_artifacts(self.thread_id)]

    async def aput(
        self,
        name: str,
        data: bytes | str,
        *,
        media_type: str | None = None,
        preview: str | None = None,
    ) -> ArtifactRef:
        """``put`` for an async tool: the store is written from a worker thread."""
        return await asyncio.to_thread(self.put, name, data, media_type=media_type, preview=preview)

    async def aget(self, ref: ArtifactRef | Mapping[str, Any] | str) -> bytes:
        """``get`` for an async tool."""
        return await asyncio.to_thread(self.get, ref)


def _no_credential(secrets: Secrets, name: str) -> None:
    """ToolError if the name ``name`` holds one of the call's credentials. Refused, not cut
    out as from the content: the marker is no artifact name, and a name cut is not the
    one the tool (or its model) asks for later."""
    names = secrets.held_in(name)
    if names:
        raise ToolError(
            f"artifact name {secrets.scrub(name)!r} holds the value of credential "
            f"{names[0]!r}; a name is kept and shown as it is (listings, URLs, files written "
            "out), so name the artifact by something that is not secret (export.csv)"
        )


def _scrubbed(
    secrets: Secrets, content: bytes, text: str | None, preview: str | None
) -> tuple[bytes, str | None, str | None]:
    """Content, its text and a preview with ``secrets`` cut out (content only if text)."""
    decoded = text
    if decoded is None:
        try:
            decoded = content.decode("utf-8")
        except UnicodeDecodeError:
            decoded = None
    if decoded is not None:
        cut = secrets.scrub(decoded)
        if cut != decoded:
            content = cut.encode("utf-8")
            text = cut if text is not None else None
    return content, text, None if preview is None else secrets.scrub(preview)


def artifact_of(store: ArtifactStore, thread_id: str, name: str) -> tuple[ArtifactRecord, bytes]:
    """Run ``thread_id``'s artifact ``name`` and its content; UnknownArtifact if none."""
    record = store.get_artifact(thread_id, name)
    content = None if record is None else store.artifact_content(record.ref.digest)
    if record is None or content is None:
        raise UnknownArtifact(thread_id, name)
    return record, content


def shown_ref(
    ref: ArtifactRef, redactor: Redactor | None, *, known: Collection[Any]
) -> ArtifactRef:
    """``ref`` as a person may read it, on every surface that lists a run's artifacts (the
    API, the review page, ``agentrt artifacts``): its preview masked as the run's log masks
    its copy of the reference, by the Redactor and with ``known``, the secret values the
    run's log holds (``tracing.shown.log_secrets``). ``put`` cuts out only credentials, and
    a preview (the start of a text) may repeat a tool's sensitive argument."""
    return replace(ref, preview=str(shown(ref.preview, redactor, known=known)))


def call_stem(tool: str, step_id: str) -> str:
    """What the artifacts agentrt names for one call begin with: its tool and step
    (``export-0.1``). Its result, when too large, is ``<stem>.json`` or ``<stem>.txt``;
    names that go on with ``-`` (run_python's files) are never one of those."""
    return _UNNAMEABLE.sub("_", f"{tool}-{step_id}").lstrip("._-") or "result"


def result_artifact(artifacts: ToolArtifacts, tool: str, step_id: str, result: Any) -> ArtifactRef:
    """Keep a tool's too-large result (JSON form) as an artifact: a string as text, any
    other value as JSON, named for the tool and the step (a re-run of the step names the
    same), previewed by its start."""
    stem = call_stem(tool, step_id)
    if isinstance(result, str):
        return artifacts.put(f"{stem}.txt", result, media_type="text/plain; charset=utf-8")
    text = json.dumps(result, ensure_ascii=False, separators=(",", ":"), default=str)
    return artifacts.put(f"{stem}.json", text, media_type="application/json")


def refs_as_json(value: Any) -> Any:
    """``value`` with every ArtifactRef in it (at any depth of dicts, lists and tuples) in
    its JSON form, as results are kept; ``value`` itself, untouched, if it holds none."""
    if isinstance(value, ArtifactRef):
        return value.to_json()
    if isinstance(value, dict):
        items = {k: refs_as_json(v) for k, v in value.items()}
        return items if any(items[k] is not v for k, v in value.items()) else value
    if isinstance(value, list | tuple):
        seq = [refs_as_json(v) for v in value]
        return seq if any(a is not b for a, b in zip(seq, value, strict=True)) else value
    return value


def _digest_of(ref: ArtifactRef | Mapping[str, Any] | str) -> str | None:
    """The digest a reference names; None for a name."""
    if isinstance(ref, ArtifactRef):
        return ref.digest
    return None if isinstance(ref, str) else str(ref["digest"])


def _name_of(ref: ArtifactRef | Mapping[str, Any] | str) -> str:
    if isinstance(ref, ArtifactRef):
        return ref.name
    if isinstance(ref, str):
        return ref
    if is_artifact_ref(dict(ref)):
        return str(ref["name"])
    raise ConfigError(
        f"{ref!r:.200} is not an artifact: give its name, an ArtifactRef, or the reference "
        "a tool returned"
    )


def _media_type(name: str, text: bool) -> str:
    guessed, _ = mimetypes.guess_type(name)
    if guessed is not None:
        return guessed
    return "text/plain; charset=utf-8" if text else "application/octet-stream"


def _textual(media_type: str) -> bool:
    kind = media_type.split(";", 1)[0].strip()
    return kind.startswith("text/") or kind in ("application/json", "application/xml")


def _shown(preview: str) -> str:
    """A preview as it can be kept anywhere (no control characters, PostgreSQL's text takes
    no NUL) and read at a glance."""
    return preview_of(_UNSHOWN.sub("", str(preview)), PREVIEW_CHARS)
