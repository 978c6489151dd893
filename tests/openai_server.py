"""An OpenAI-compatible chat completions server on 127.0.0.1, for the real OpenAI client.

Each request takes the next entry of a script: a reply (text and tool calls, with usage)
or a fault (an HTTP status with an OpenAI-shaped error body, and headers such as
Retry-After). Requests are kept, so a test says exactly how many the client sent.
Streaming requests are answered as server-sent events, with a usage chunk only when the
client asks for one (``stream_options.include_usage``), as OpenAI does; a server made with
``stream_usage=False`` never sends one, as some OpenAI-compatible servers do not. An output
cap past the model's largest answer is refused with a 400, as OpenAI refuses it (the
gpt-4o family's 16,384 tokens here). A stream may break off with an error event after its
first words, as OpenAI reports a failure once its 200 is sent.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Reply:
    """An answer: text and/or tool calls, and its token counts."""

    content: str = ""
    tool_calls: Sequence[tuple[str, dict[str, Any]]] = ()
    prompt_tokens: int = 20
    completion_tokens: int = 10
    finish_reason: str | None = None
    refusal: str | None = None
    """OpenAI's ``refusal`` field, content null: the model declined."""
    call_ids: Sequence[str] = ()
    """The tool calls' ids, in order, instead of numbered ones (a server may repeat one)."""


@dataclass(frozen=True)
class Fault:
    """An error answer: an HTTP status, its message, and extra headers."""

    status: int
    message: str = "the server had an error processing your request"
    code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BrokenStream:
    """A streamed answer that breaks off: its first words, then an error event (a request
    not streamed gets the error as a 500)."""

    said: str = "Hel"
    message: str = "The server had an error while processing your request."
    type: str = "server_error"


LARGEST_ANSWER = 16_384
"""Output tokens the gpt-4o family answers at most: a larger cap is a 400."""


def _cap_refused(body: dict[str, Any]) -> str | None:
    cap = body.get("max_completion_tokens", body.get("max_tokens"))
    if isinstance(cap, int) and cap > LARGEST_ANSWER:
        return (
            f"max_tokens is too large: {cap}. This model supports at most {LARGEST_ANSWER} "
            f"completion tokens, whereas you provided {cap}."
        )
    return None


class OpenAIServer:
    """The server's script and what it was asked; ``url`` is its base URL (…/v1)."""

    def __init__(
        self, script: Sequence[Reply | Fault | BrokenStream], *, stream_usage: bool = True
    ) -> None:
        self.script = list(script)
        self.stream_usage = stream_usage
        self.requests: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._served = 0
        self.url = ""

    def next_entry(self, body: dict[str, Any]) -> Reply | Fault | BrokenStream:
        with self._lock:
            self.requests.append(body)
            if self._served >= len(self.script):
                return Fault(500, f"the test's script ran out after {self._served} requests")
            entry = self.script[self._served]
            self._served += 1
            return entry


def _completion(reply: Reply, index: int, model: str) -> dict[str, Any]:
    calls = [
        {
            "id": _call_id(reply, index, i),
            "type": "function",
            "function": {"name": name, "arguments": json.dumps(args)},
        }
        for i, (name, args) in enumerate(reply.tool_calls)
    ]
    message: dict[str, Any] = {"role": "assistant", "content": reply.content or None}
    if calls:
        message["tool_calls"] = calls
    if reply.refusal is not None:
        message["refusal"] = reply.refusal
    return {
        "id": f"chatcmpl-test{index}",
        "object": "chat.completion",
        "created": 1_800_000_000,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": reply.finish_reason or ("tool_calls" if calls else "stop"),
            }
        ],
        "usage": _usage(reply),
    }


def _call_id(reply: Reply, index: int, i: int) -> str:
    return reply.call_ids[i] if i < len(reply.call_ids) else f"call_{index}_{i}"


def _usage(reply: Reply) -> dict[str, int]:
    return {
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens,
        "total_tokens": reply.prompt_tokens + reply.completion_tokens,
    }


def _chunks(reply: Reply, index: int, model: str, with_usage: bool) -> Iterator[dict[str, Any]]:
    base = {"id": f"chatcmpl-test{index}", "object": "chat.completion.chunk", "model": model}
    base["created"] = 1_800_000_000
    yield base | {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
    if reply.content:
        yield base | {"choices": [{"index": 0, "delta": {"content": reply.content}}]}
    if reply.refusal is not None:
        yield base | {"choices": [{"index": 0, "delta": {"refusal": reply.refusal}}]}
    for i, (name, args) in enumerate(reply.tool_calls):
        call = {
            "index": i,
            "id": _call_id(reply, index, i),
            "type": "function",
            "function": {"name": name, "arguments": json.dumps(args)},
        }
        yield base | {"choices": [{"index": 0, "delta": {"tool_calls": [call]}}]}
    finish = reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")
    yield base | {"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]}
    if with_usage:
        yield base | {"choices": [], "usage": _usage(reply)}


def _handler(server: OpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            index = len(server.requests)
            entry = server.next_entry(body)
            if isinstance(entry, Fault):
                error = {"message": entry.message, "type": "server_error", "code": entry.code}
                self._send(entry.status, {"error": error}, entry.headers)
                return
            if isinstance(entry, BrokenStream):
                self._break_off(entry, index, body)
                return
            refused = _cap_refused(body)
            if refused is not None:
                error = {"message": refused, "type": "invalid_request_error", "code": None}
                self._send(400, {"error": error}, {})
                return
            model = body.get("model", "gpt-4o-mini")
            if not body.get("stream"):
                self._send(200, _completion(entry, index, model), {})
                return
            asked = bool((body.get("stream_options") or {}).get("include_usage"))
            with_usage = asked and server.stream_usage
            payload = (
                b"".join(
                    b"data: " + json.dumps(chunk).encode() + b"\n\n"
                    for chunk in _chunks(entry, index, model, with_usage)
                )
                + b"data: [DONE]\n\n"
            )
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def _break_off(self, entry: BrokenStream, index: int, body: dict[str, Any]) -> None:
            error = {"message": entry.message, "type": entry.type, "code": None}
            if not body.get("stream"):
                self._send(500, {"error": error}, {})
                return
            first = {
                "id": f"chatcmpl-test{index}",
                "object": "chat.completion.chunk",
                "created": 1_800_000_000,
                "model": body.get("model", "gpt-4o-mini"),
                "choices": [{"index": 0, "delta": {"role": "assistant", "content": entry.said}}],
            }
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for chunk in (first, {"error": error}):
                self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
            self.wfile.flush()
            self.close_connection = True

        def _send(self, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

    return Handler


@contextmanager
def openai_server(
    script: Sequence[Reply | Fault | BrokenStream], *, stream_usage: bool = True
) -> Iterator[OpenAIServer]:
    """Serve ``script`` on 127.0.0.1 at a free port until the block ends."""
    server = OpenAIServer(script, stream_usage=stream_usage)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(server))
    httpd.daemon_threads = True
    server.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
