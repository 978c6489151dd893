"""The review page's artifact downloads: a run's file, for a person of the run's tenant."""

from __future__ import annotations

from fastapi import APIRouter, Response

from agentrt.service.paths import ARTIFACT
from agentrt.service.problems import Problem
from agentrt.service.routes.artifacts import artifact_response
from agentrt.service.ui.routes import Caller, PageError, ServiceDep

__all__ = ["router"]

router = APIRouter(prefix="/ui", include_in_schema=False)


@router.get(ARTIFACT)
async def download(thread_id: str, name: str, key: Caller, service: ServiceDep) -> Response:
    """The artifact as a file (the run page links each one here, signed in by its cookie)."""
    try:
        await service.run_for(key.principal, thread_id)
        return await artifact_response(service.runtime, thread_id, name)
    except Problem as exc:
        raise PageError(exc.status, exc.detail) from None
