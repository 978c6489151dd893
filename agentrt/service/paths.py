"""Ids in addresses: a thread id may hold any character, "/" too, and still be one path
segment of its run's addresses (/runs/{id}, /ui/runs/{id}, ...).

An app keys its threads as it likes ("acme/42", "ticket#42"); the service links to them
with the id quoted (``quoted``), and a route reads its id segment with the ``segment``
convertor. A server decodes ``%2F`` to "/" before routing, which would split such an id;
``EncodedSlashes`` routes on the path as sent, with ``%2F`` (and ``%25``, so a literal
"%2F" in an id stays itself) still encoded, and the convertor decodes those two.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

from starlette.convertors import Convertor, register_url_convertor
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["ARTIFACT", "RUN", "SEGMENT", "EncodedSlashes", "quoted"]

SEGMENT = "agentrt_segment"
"""The convertor's name, as a route writes it: ``/runs/{thread_id:agentrt_segment}``."""

RUN = "/runs/{thread_id:" + SEGMENT + "}"
"""A run's address, under which its routes are (``f"{RUN}/events"``); a route module
naming it imports this module, so the convertor is there before the route is made."""

ARTIFACT = RUN + "/artifacts/{name:" + SEGMENT + "}"
"""One artifact of a run."""

_KEPT = re.compile(r"%(?:2[Ff]|25)")


def quoted(value: str) -> str:
    """``value`` as one segment of a path: every character but letters, digits and
    ``-._~`` percent-encoded ("acme/42" is "acme%2F42")."""
    return quote(value, safe="")


def _kept_decoded(text: str) -> str:
    """Decode the two escapes routing keeps (``%2F``, ``%25``)."""
    return _KEPT.sub(lambda m: "%" if m.group(0) == "%25" else "/", text)


class _Segment(Convertor[str]):
    """One path segment, with the escapes ``EncodedSlashes`` kept decoded."""

    regex = "[^/]+"

    def convert(self, value: str) -> str:
        return _kept_decoded(value)

    def to_string(self, value: str) -> str:
        return value.replace("%", "%25").replace("/", "%2F")


register_url_convertor(SEGMENT, _Segment())


class EncodedSlashes:
    """Route on the path as the client sent it, with ``%2F`` and ``%25`` still encoded.

    Only a path holding either is changed, and only when the rewritten path decodes back to
    the one the server gave (a server that decodes differently is left as it is).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            raw = scope.get("raw_path")
            if raw and (b"%2" in raw.upper()):
                scope = _rerouted(scope, raw)
        await self.app(scope, receive, send)


def _rerouted(scope: Scope, raw: bytes) -> Scope:
    try:
        sent = raw.decode("ascii")
    except UnicodeDecodeError:
        return scope
    pieces = re.split(r"(%(?:2[Ff]|25))", sent.partition("?")[0])
    # Each escape kept is written upper-case, as _kept_decoded reads it.
    path = "".join(p.upper() if i % 2 else unquote(p) for i, p in enumerate(pieces))
    if path == scope["path"] or _kept_decoded(path) != scope["path"]:
        return scope
    return {**scope, "path": path}
