"""How the review page answers a refusal: as a page, never as JSON (the API's
problem+json stays the API's).

A request with no usable key is sent to the sign-in form (SignInNeeded); any other refusal
is the error page with its status (PageError), a query or form the page does not take
too. ``install`` adds these answers to the app, ahead of the page's routes.
"""

from __future__ import annotations

import inspect
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response

from agentrt.service import auth
from agentrt.service.ui import views
from agentrt.service.ui.forms import plain

__all__ = ["PageError", "SignInNeeded", "install"]


class SignInNeeded(Exception):
    """The request has no usable key: the person is sent to the sign-in form."""

    def __init__(self, request: Request, why: str | None = None) -> None:
        super().__init__(why or "sign in")
        # Back to the page asked for; a form post or the run page's poll go to the queue.
        wanted = request.method == "GET" and not request.url.path.endswith("/state")
        self.next = request.url.path if wanted else "/ui"
        self.why = why


class PageError(Exception):
    """A refusal shown as an HTML page (the review page never answers with JSON errors)."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def install(app: FastAPI) -> None:
    """Answer the review page's refusals with pages: a sign-in form, or the error page."""
    api_validation = app.exception_handlers[RequestValidationError]

    async def on_sign_in(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SignInNeeded)
        query = {"next": exc.next} | ({"why": exc.why} if exc.why else {})
        response = RedirectResponse(f"/ui/login?{urlencode(query)}", status_code=303)
        if exc.why:  # a key that no longer works is forgotten
            response.delete_cookie(auth.COOKIE, path="/ui")
        return response

    async def on_page_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PageError)
        return views.page(
            request,
            "error.html",
            {"status": exc.status, "message": exc.message},
            status=exc.status,
            headers=exc.headers,
        )

    async def on_validation(request: Request, exc: Exception) -> Response:
        # A page asked for with a query it does not take (a link's hop=abc): a page too.
        if not request.url.path.startswith("/ui/"):
            answer = api_validation(request, exc)
            return await answer if inspect.isawaitable(answer) else answer
        assert isinstance(exc, RequestValidationError)
        said = "; ".join(plain(e) for e in exc.errors())
        return await on_page_error(request, PageError(422, f"This page cannot be shown: {said}."))

    app.add_exception_handler(SignInNeeded, on_sign_in)
    app.add_exception_handler(PageError, on_page_error)
    app.add_exception_handler(RequestValidationError, on_validation)
