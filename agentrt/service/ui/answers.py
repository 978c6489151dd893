"""How the review page answers a refusal: as a page, never as JSON (the API's
problem+json stays the API's).

A request with no usable key is sent to the sign-in form (SignInNeeded); any other refusal
is the error page with its status (PageError), a query or form the page does not take
too, and so are an address under /ui that is no page (404), a page asked for with a method
it does not take (405) and a form over the body limit (413, ``too_large``). ``install``
adds these answers to the app, ahead of the page's routes.
"""

from __future__ import annotations

import inspect
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException

from agentrt.service import auth
from agentrt.service.ui import views
from agentrt.service.ui.forms import plain

__all__ = ["PageError", "SignInNeeded", "install", "on_page", "too_large"]


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


def on_page(request: Request) -> bool:
    """True for an address of the review page (under /ui, wherever the app is mounted)."""
    path: str = request.scope["path"]
    root: str = request.scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path == "/ui" or path.startswith("/ui/")


def too_large(request: Request, detail: str) -> Response | None:
    """The review page's answer to a body over the limit (BodyLimit's ``refused``); None
    for the API's. Nothing of the body was read, so the form cannot be shown again as it
    was typed: the page says so, and what to do."""
    if not on_page(request):
        return None
    limit = auth.service_of(request).settings.max_body_bytes
    return _error_page(request, PageError(413, _too_large(limit)))


def _too_large(limit: int) -> str:
    return (
        f"What this form sent is over this service's limit of {limit} bytes, so none of it "
        "was read and nothing was decided. Go back to the page (your browser keeps what "
        "you typed), make it shorter (edited arguments: only what the call needs) and send "
        "it again."
    )


def _error_page(request: Request, exc: PageError) -> Response:
    return views.page(
        request,
        "error.html",
        {"status": exc.status, "message": exc.message},
        status=exc.status,
        headers=exc.headers,
    )


def install(app: FastAPI) -> None:
    """Answer the review page's refusals with pages: a sign-in form, or the error page."""
    api_validation = app.exception_handlers[RequestValidationError]
    api_http = app.exception_handlers[HTTPException]

    async def on_sign_in(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SignInNeeded)
        query = {"next": exc.next} | ({"why": exc.why} if exc.why else {})
        response = RedirectResponse(f"/ui/login?{urlencode(query)}", status_code=303)
        if exc.why:  # a key that no longer works is forgotten
            response.delete_cookie(auth.COOKIE, path="/ui")
        return response

    async def on_page_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PageError)
        return _error_page(request, exc)

    async def on_validation(request: Request, exc: Exception) -> Response:
        # A page asked for with a query it does not take (a link's hop=abc): a page too.
        if not on_page(request):
            answer = api_validation(request, exc)
            return await answer if inspect.isawaitable(answer) else answer
        assert isinstance(exc, RequestValidationError)
        said = "; ".join(plain(e) for e in exc.errors())
        return _error_page(request, PageError(422, f"This page cannot be shown: {said}."))

    async def on_http(request: Request, exc: Exception) -> Response:
        # Starlette's own refusals (no such page, a method the page does not take, a
        # chunked body past the limit): a page under /ui, the API's problem+json elsewhere.
        assert isinstance(exc, HTTPException)
        if not on_page(request):
            answer = api_http(request, exc)
            return await answer if inspect.isawaitable(answer) else answer
        return _error_page(request, _http_refusal(request, exc))

    app.add_exception_handler(SignInNeeded, on_sign_in)
    app.add_exception_handler(PageError, on_page_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(HTTPException, on_http)


def _http_refusal(request: Request, exc: HTTPException) -> PageError:
    """Starlette's refusal ``exc`` in words for the person at the page."""
    headers = dict(exc.headers or {})
    where = request.url.path
    if exc.status_code == 404:
        message = f"There is no page at {where!r}. The approvals and runs pages link to them all."
    elif exc.status_code == 405:
        message = (
            f"{where!r} is not opened with {request.method} (it takes "
            f"{headers.get('Allow', 'another method')}); use the page's own links and buttons."
        )
    elif exc.status_code == 413:
        message = _too_large(auth.service_of(request).settings.max_body_bytes)
    else:
        message = str(exc.detail)
    return PageError(exc.status_code, message, headers)
