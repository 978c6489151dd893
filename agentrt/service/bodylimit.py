"""Request bodies over the service's limit are refused with 413, as problem+json.

(FastAPI's own ``max_body_size`` answers a declared oversize body in plain text, whatever
the app's error handlers say; this middleware answers both cases in the API's one shape.)
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentrt.service.problems import problem_response

__all__ = ["BodyLimit"]


class BodyLimit:
    """Refuse bodies over ``max_bytes``: a declared Content-Length before a byte is read, a
    chunked body the moment it passes the limit. The server never buffers more than that."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

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
            response = problem_response(
                Request(scope), 413, self.detail(), type="body-too-large", max_bytes=self.max_bytes
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
