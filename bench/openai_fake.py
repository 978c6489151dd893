"""An OpenAI-compatible chat completions server on 127.0.0.1 that answers like a model
with tools: a call of the no-op tool until the conversation holds ``calls`` tool results,
then an answer of ``words`` words. Asked to stream, it sends the answer a word a chunk, as
a provider sends tokens; asked for the whole answer, one JSON body. Every answer waits
``latency`` seconds first. Stateless: any number of runs at once.

It runs in a process of its own (``openai_fake`` starts it), so the CPU it spends is
neither side's: ``python openai_fake.py CALLS WORDS LATENCY`` prints its base URL and
serves until it is stopped.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

__all__ = ["openai_fake"]


def _answer(calls_made: int, calls: int, words: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The whole message, and the deltas a stream sends it in."""
    if calls_made < calls:
        call = {"id": f"call_{calls_made}", "type": "function"}
        call["function"] = {"name": "noop", "arguments": "{}"}
        message = {"role": "assistant", "content": None, "tool_calls": [call]}
        return message, [{"role": "assistant", "tool_calls": [{"index": 0, **call}]}]
    text = [f"word{i} " for i in range(words)]
    message = {"role": "assistant", "content": "".join(text)}
    return message, [{"role": "assistant", "content": ""}, *({"content": w} for w in text)]


def _handler(calls: int, words: int, latency: float) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            time.sleep(latency)
            made = sum(1 for m in body["messages"] if m.get("role") == "tool")
            message, deltas = _answer(made, calls, words)
            finish = "tool_calls" if "tool_calls" in message else "stop"
            usage = {"prompt_tokens": 50, "completion_tokens": words, "total_tokens": 50 + words}
            head = {"id": "chatcmpl-bench", "model": body["model"], "created": 1_800_000_000}
            if not body.get("stream"):
                choice = {"index": 0, "message": message, "finish_reason": finish}
                whole = head | {"object": "chat.completion", "choices": [choice], "usage": usage}
                self._send("application/json", json.dumps(whole).encode())
                return
            head["object"] = "chat.completion.chunk"
            chunks = [head | {"choices": [{"index": 0, "delta": d}]} for d in deltas]
            chunks.append(head | {"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
            if (body.get("stream_options") or {}).get("include_usage"):
                chunks.append(head | {"choices": [], "usage": usage})
            sent = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks)
            self._send("text/event-stream", sent + b"data: [DONE]\n\n")

        def _send(self, kind: str, data: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


@contextmanager
def openai_fake(*, calls: int, words: int, latency: float) -> Iterator[str]:
    """The server in a process of its own until the block ends; its base URL (…/v1)."""
    process = subprocess.Popen(
        [sys.executable, str(Path(__file__)), str(calls), str(words), str(latency)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        yield process.stdout.readline().strip()
    finally:
        process.terminate()
        process.wait(timeout=30)


def _serve(calls: int, words: int, latency: float) -> None:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(calls, words, latency))
    httpd.daemon_threads = True
    print(f"http://127.0.0.1:{httpd.server_address[1]}/v1", flush=True)
    httpd.serve_forever()


if __name__ == "__main__":
    _serve(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]))
