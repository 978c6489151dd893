"""How an MCPServer reaches its server: a subprocess over stdio, or Streamable HTTP.

Each transport checks what it was given when the server is declared, says where it goes
without its secrets (an env value, a header, a password in a URL never appear), and opens
the SDK's transport for a session: a stdio server is checked for first (its program must
exist) and its stderr goes to the log.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from agentrt.errors import ConfigError
from agentrt.redaction import Redactor, secret_forms
from agentrt.tools.mcp.connection import StderrToLog, WatchedTransport
from agentrt.urls import hidden_password

__all__ = ["Http", "Stdio", "http_transport", "longest_form", "stdio_transport"]


@dataclass(frozen=True, slots=True)
class Stdio:
    """A server this process starts, talking JSON-RPC on its stdin and stdout."""

    command: str
    args: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    """Added to the SDK's minimal environment (HOME, PATH, ...)."""
    cwd: str | None

    @property
    def kind(self) -> str:
        return "stdio"

    def shown(self) -> str:
        return " ".join([self.command, *self.args])

    def secrets(self) -> dict[str, str]:
        """The variables of ``env`` whose names say they hold a secret (a token, a key)."""
        return given_secrets(self.env)

    def open(
        self, server: str, on_end: Callable[[], None], scrub: Callable[[str], str] = str
    ) -> WatchedTransport:
        """The SDK's stdio transport (the process starts as it is entered); its stderr
        lines are logged after ``scrub``."""
        from mcp import StdioServerParameters
        from mcp.client.stdio import get_default_environment, stdio_client

        self._check(server, get_default_environment() | dict(self.env))
        stderr = StderrToLog(server, scrub, hold=longest_form(self.secrets().values()))
        params = StdioServerParameters(
            command=self.command, args=list(self.args), env=dict(self.env), cwd=self.cwd
        )
        return WatchedTransport(
            stdio_client(params, errlog=stderr.file), on_end, after_enter=stderr.spawned
        )

    def _check(self, server: str, env: Mapping[str, str]) -> None:
        command = self.command
        if os.sep in command:
            found = os.access(command, os.X_OK) and Path(command).is_file()
        else:
            found = shutil.which(command, path=env.get("PATH")) is not None
        if not found:
            raise ConfigError(
                f"MCP server {server!r}: command {command!r} was not found (searched "
                f"{'its path' if os.sep in command else 'PATH'}); install the server, or give "
                "the full path to its program"
            )
        if self.cwd is not None and not Path(self.cwd).is_dir():
            raise ConfigError(f"MCP server {server!r}: cwd {self.cwd!r} is not a directory")


@dataclass(frozen=True, slots=True)
class Http:
    """A server that runs elsewhere, reached over Streamable HTTP."""

    url: str
    headers: tuple[tuple[str, str], ...]

    @property
    def kind(self) -> str:
        return "http"

    def secrets(self) -> dict[str, str]:
        """The headers whose names say they hold a secret (Authorization, X-Api-Key)."""
        return given_secrets(self.headers)

    def shown(self) -> str:
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}{parts.path}"

    def open(
        self, server: str, on_end: Callable[[], None], scrub: Callable[[str], str] = str
    ) -> WatchedTransport:
        """The SDK's Streamable HTTP transport, on an HTTP client with the headers (the
        server's own output stays where it runs: ``scrub`` has nothing to do)."""
        from mcp.client.streamable_http import streamable_http_client
        from mcp.shared._httpx_utils import create_mcp_http_client

        http = create_mcp_http_client(headers=dict(self.headers) or None)
        return WatchedTransport(
            streamable_http_client(self.url, http_client=http), on_end, on_exit=http.aclose
        )


def given_secrets(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The pairs whose names the Redactor's key patterns call secret: what the app gave a
    server to authenticate with, which the server may echo (a debug line, an auth error).
    Only those: ``env`` holds ordinary words too, which would be cut out everywhere."""
    names = Redactor()
    return {name: value for name, value in pairs if names.sensitive_key(name)}


def longest_form(values: Iterable[str]) -> int:
    """The length of the longest spelling of any of ``values`` that a scrub looks for
    (``redaction.secret_forms``): how much of a cut line's end may hold the start of one."""
    return max((len(form) for value in values for form in secret_forms(value)), default=0)


def stdio_transport(
    server: str,
    command: Any,
    args: Iterable[str] | Any,
    env: Mapping[str, str] | None,
    cwd: str | Path | None,
) -> Stdio:
    """A stdio transport from what the app gave, each part checked."""
    if not isinstance(command, str) or not command.strip():
        raise ConfigError(f"MCP server {server!r}: command must be a program, got {command!r}")
    if isinstance(args, str):
        raise ConfigError(
            f"MCP server {server!r}: args must be a list of strings, got the string {args!r}; "
            f"write args=[{args!r}]"
        )
    arg_list = tuple(args)
    if not all(isinstance(a, str) for a in arg_list):
        raise ConfigError(f"MCP server {server!r}: args must be strings, got {list(arg_list)!r}")
    if env is not None and not (
        isinstance(env, Mapping)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())
    ):
        raise ConfigError(
            f"MCP server {server!r}: env must map variable names to strings "
            "(its values are not shown here)"
        )
    return Stdio(
        command=command,
        args=arg_list,
        env=tuple(sorted((env or {}).items())),
        cwd=None if cwd is None else str(cwd),
    )


def http_transport(server: str, url: Any, headers: Mapping[str, str] | None) -> Http:
    """An HTTP transport from what the app gave, each part checked."""
    if not isinstance(url, str) or _scheme(url) not in ("http", "https"):
        # The URL as given may carry a password (https://user:password@host): never shown.
        got = repr(hidden_password(url)) if isinstance(url, str) else f"a {type(url).__name__}"
        raise ConfigError(
            f"MCP server {server!r}: url must be an http:// or https:// URL, got {got}"
        )
    if headers is not None and not (
        isinstance(headers, Mapping)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items())
    ):
        raise ConfigError(
            f"MCP server {server!r}: headers must map header names to strings "
            "(their values are not shown here)"
        )
    return Http(url=url, headers=tuple(sorted((headers or {}).items())))


def _scheme(url: str) -> str:
    try:
        return urlsplit(url).scheme
    except ValueError:  # a bracket left open: no URL
        return ""
