"""Security headers on every answer; the review page's strict Content-Security-Policy.

The review page loads only its own CSS and script (no inline script, style or event
handler, no CDN), so its policy allows exactly that: a script injected into a page by a
value that slipped past escaping does not run, and no other site may frame the page to
trick a click out of an approver.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["UI_CSP", "SecurityHeaders"]

UI_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
"""The review page's Content-Security-Policy."""

_EVERYWHERE = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY"}


class SecurityHeaders:
    """Add nosniff and DENY framing to every HTTP answer, and UI_CSP to the review page's."""

    def __init__(self, app: ASGIApp, ui_prefix: str = "/ui") -> None:
        self.app = app
        self.ui_prefix = ui_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        ui = path == self.ui_prefix or path.startswith(self.ui_prefix + "/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in _EVERYWHERE.items():
                    headers.setdefault(name, value)
                if ui:
                    headers.setdefault("Content-Security-Policy", UI_CSP)
            await send(message)

        await self.app(scope, receive, with_headers)
