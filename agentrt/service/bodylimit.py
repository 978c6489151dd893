"""Request bodies over the service's limit are refused with 413, as problem+json (the
review page's as a page: ``refused``).

(FastAPI's own ``max_body_size`` answers a declared oversize body in plain text, whatever
the app's error handlers say; this middleware answers both cases in the app's own shape.)
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentrt.service.problems import problem_response

__all__ = ["BodyLimit"]


class BodyLimit:
    """Refuse bodies over ``max_bytes``: a declared Content-Length before a byte is read, a
    chunked body the moment it passes the limit. The server never buffers more than that."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        refused: Callable[[Request, str], Response | None] = lambda request, detail: None,
    ) -> None:
        """``refused``: the answer to a declared oversize body for a request that has its
        own (the review page's), or None for the API's problem+json. A chunked body that
        passes the limit is refused by the app's HTTPException handlers."""
        self.app = app
        self.max_bytes = max_bytes
        self.refused = refused

    def detail(self) -> str:
        return (
            f"the request body is over the service's limit of {self.max_bytes} bytes; send "
            "less (a goal, a decision and its arguments fit well under it)"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            request = Request(scope)
            response = self.refused(request, self.detail()) or problem_response(
                request, 413, self.detail(), type="body-too-large", max_bytes=self.max_bytes
            )
            await response(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    # Raised inside the route's body read; the problem handlers answer it.
                    raise HTTPException(413, self.detail())
            return message

        await self.app(scope, counted, send)
