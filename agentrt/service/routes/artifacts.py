"""/runs/{id}/artifacts: a run's artifacts, listed and served, under the run's tenant check.

Listed as the run's log shows them: each preview masked with the secret values the log
holds (``tools.artifacts.shown_ref``), as ``agentrt artifacts`` shows them too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel

from agentrt.artifacts import ArtifactRef, UnknownArtifact
from agentrt.runtime import AgentRuntime
from agentrt.service.auth import Caller, current_service
from agentrt.service.context import Service
from agentrt.service.paths import ARTIFACT, RUN, quoted
from agentrt.service.problems import Problem
from agentrt.tools.artifacts import artifact_of, shown_ref

__all__ = [
    "ArtifactList",
    "ArtifactOut",
    "artifact_out",
    "artifact_response",
    "artifacts_out",
    "router",
]

router = APIRouter(tags=["artifacts"])

ServiceDep = Annotated[Service, Depends(current_service)]


class ArtifactOut(BaseModel):
    """An artifact as the API lists it: its reference, the preview masked."""

    name: str
    media_type: str
    size: int
    digest: str
    preview: str
    url: str


class ArtifactList(BaseModel):
    artifacts: list[ArtifactOut]


def artifact_out(
    rt: AgentRuntime, thread_id: str, ref: ArtifactRef, *, known: Collection[Any]
) -> ArtifactOut:
    """``ref`` as a person may read it: its preview masked as the run's log masks its copy
    (``shown_ref``; ``known``: the secret values the run's log holds)."""
    return ArtifactOut(
        name=ref.name,
        media_type=ref.media_type,
        size=ref.size,
        digest=ref.digest,
        preview=shown_ref(ref, rt.redactor, known=known).preview,
        url=f"/runs/{quoted(thread_id)}/artifacts/{ref.name}",
    )


def artifacts_out(rt: AgentRuntime, thread_id: str) -> list[ArtifactOut]:
    """The run's artifacts as a person may read them (a run the caller may read). It reads
    the run's log: call it off the event loop."""
    refs = rt.artifacts(thread_id)
    if not refs:
        return []  # no log to read
    # The log is read after the artifacts: a step's arguments are in it before its tool
    # runs, so each artifact listed is masked with the secrets of the call that made it.
    known = rt.log_secrets(thread_id)
    return [artifact_out(rt, thread_id, r, known=known) for r in refs]


@router.get(f"{RUN}/artifacts", response_model=ArtifactList)
async def list_artifacts(thread_id: str, key: Caller, service: ServiceDep) -> ArtifactList:
    """The run's artifacts, by name; 404 for a run of another tenant."""
    await service.run_for(key.principal, thread_id)
    return ArtifactList(
        artifacts=await asyncio.to_thread(artifacts_out, service.runtime, thread_id)
    )


@router.get(
    ARTIFACT,
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
async def get_artifact(thread_id: str, name: str, key: Caller, service: ServiceDep) -> Response:
    """The artifact's content, with its media type; 404 for a run of another tenant or a
    name the run has none of."""
    await service.run_for(key.principal, thread_id)
    return await artifact_response(service.runtime, thread_id, name)


async def artifact_response(rt: AgentRuntime, thread_id: str, name: str) -> Response:
    """The content of a run the caller may read (checked before), as a download."""
    try:
        record, content = await asyncio.to_thread(artifact_of, rt.store, thread_id, name)
    except UnknownArtifact:
        raise Problem(
            404,
            f"run {thread_id!r} has no artifact named {name!r}; list its artifacts with "
            f"GET /runs/{thread_id}/artifacts",
            type="unknown-artifact",
        ) from None
    ref = record.ref
    return Response(
        content,
        media_type=ref.media_type,
        headers={
            # Served as a file, never drawn as a page of this site (a tool's HTML is data).
            "Content-Disposition": f'attachment; filename="{ref.name}"',
            "X-Content-Type-Options": "nosniff",
            "ETag": f'"{ref.digest}"',
        },
    )
