"""MCPServer: an MCP server's tools as an agentrt toolset, on the official mcp SDK.

Given in ``tools=[...]`` beside @tool functions, a server's tools get every guarantee a
function tool gets: arguments checked against the tool's inputSchema before anything is
sent (``invalid_args``), policy, approval, budget, the ledger, verify, spans. Its life:

- it starts when the runtime opens (the registry starts its toolsets), or at its first
  call; its tools are listed then, and again between runs when it says they changed;
- a stdio server that exits is started again at the next call; a call while a server
  cannot be reached is a transient failure (retried, then an observation);
- a server that goes away during a call leaves that call's effect in doubt: a read or an
  idempotent tool is called again, any other goes to the ledger's reconcile gate;
- it is closed (a stdio server stopped) with the runtime.

A call waits ``call_timeout`` seconds at most (a tool's ``timeout`` override wins): a server
that never answers does not hold a run, and its lease, for good. What the app gave the
server is cut out of all it says: its tool list (a tool whose name holds a secret is left
out), its answers and errors, its stderr, what the SDK logs of it.

The protocol carries no idempotency key, so each call passes ``ctx.idempotency_key`` in
the request's ``_meta`` under ``IDEMPOTENCY_KEY_META``, for servers that read it.
"""

from __future__ import annotations

import asyncio
import importlib.util
import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentrt.errors import ConfigError
from agentrt.logs import get_logger
from agentrt.tools.contract import Effect, ToolContext, ToolError, ToolSpec
from agentrt.tools.credentials import Secrets
from agentrt.tools.errors import OutcomeUnknown
from agentrt.tools.mcp.connection import Connection, one_line
from agentrt.tools.mcp.contracts import (
    answer_of,
    error_text,
)
from agentrt.tools.mcp.listing import Listing
from agentrt.tools.mcp.sdk_log import scrub_sdk_logs, stop_scrubbing
from agentrt.tools.mcp.transports import Http, Stdio, http_transport, stdio_transport
from agentrt.tools.overrides import ToolOverride, overrides_of

if TYPE_CHECKING:
    from mcp import Client
    from mcp.types import Tool

__all__ = ["DEFAULT_CALL_TIMEOUT", "IDEMPOTENCY_KEY_META", "MCPServer"]

logger = get_logger("agentrt.mcp")

IDEMPOTENCY_KEY_META = "agentrt/idempotency-key"
"""The key in a tools/call request's ``_meta`` that carries the call's idempotency key."""

DEFAULT_CALL_TIMEOUT = 60.0
"""Seconds a call may take unless the app says (the TypeScript SDK's request timeout)."""

_SERVER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_MAX_PAGES = 100


class MCPServer(Listing):
    """An MCP server's tools, over stdio or Streamable HTTP: make one with
    ``MCPServer.stdio(...)`` or ``MCPServer.http(...)`` and give it in ``tools=[...]``."""

    kind = "MCP server"
    """What the registry calls it in messages."""

    def __init__(
        self,
        transport: Stdio | Http,
        *,
        name: str,
        prefix: str | None = None,
        overrides: Mapping[str, ToolOverride | Mapping[str, Any]] | None = None,
        include: Iterable[str] | None = None,
        exclude: Iterable[str] = (),
        connect_timeout: float = 30.0,
        call_timeout: float | None = DEFAULT_CALL_TIMEOUT,
    ) -> None:
        if importlib.util.find_spec("mcp") is None:
            raise ImportError(
                "MCPServer needs the official MCP SDK: install agentrt's mcp extra "
                "(pip install 'agentrt[mcp]')"
            )
        if not isinstance(name, str) or not _SERVER_NAME.match(name):
            raise ConfigError(
                f"an MCP server's name must be letters, digits, '_', '.' or '-' (it names the "
                f"server in policies and messages), got {name!r}"
            )
        if prefix is not None and not (isinstance(prefix, str) and re.match(r"^\w[\w-]*$", prefix)):
            raise ConfigError(
                f"MCP server {name!r}: prefix must be letters, digits, '_' or '-', got {prefix!r}"
            )
        if not (isinstance(connect_timeout, int | float) and connect_timeout > 0):
            raise ConfigError(
                f"MCP server {name!r}: connect_timeout must be seconds > 0, got {connect_timeout!r}"
            )
        if call_timeout is not None and not (
            isinstance(call_timeout, int | float) and 0 < call_timeout < math.inf
        ):
            raise ConfigError(
                f"MCP server {name!r}: call_timeout must be seconds > 0 (or None: no limit), "
                f"got {call_timeout!r}"
            )
        for label, names in (("include", include), ("exclude", exclude)):
            if isinstance(names, str):
                raise ConfigError(
                    f"MCP server {name!r}: {label} must be a list of tool names, got the string "
                    f"{names!r}; write {label}=[{names!r}]"
                )
        self._name = name
        self._transport = transport
        self._given = Secrets(transport.secrets())
        """What the app gave the server to authenticate with: cut out of what it answers."""
        self._prefix = prefix
        self._overrides = overrides_of(overrides)
        self._include = None if include is None else tuple(include)
        self._exclude = tuple(exclude)
        self._connect_timeout = float(connect_timeout)
        self._call_timeout = None if call_timeout is None else float(call_timeout)
        self._connection: Connection | None = None
        self._connecting: asyncio.Lock | None = None
        self._remote: dict[str, str] = {}
        self._specs: dict[str, tuple[str, ToolSpec]] = {}
        self._changed = False
        self._listed_once = False

    # making one ---------------------------------------------------------------------------

    @classmethod
    def stdio(
        cls,
        command: str,
        args: Iterable[str] = (),
        *,
        name: str,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        prefix: str | None = None,
        overrides: Mapping[str, ToolOverride | Mapping[str, Any]] | None = None,
        include: Iterable[str] | None = None,
        exclude: Iterable[str] = (),
        connect_timeout: float = 30.0,
        call_timeout: float | None = DEFAULT_CALL_TIMEOUT,
    ) -> MCPServer:
        """A server this runtime starts as a subprocess and talks to over stdin/stdout.

        ``env`` is added to a minimal environment (HOME, PATH, ...), as the SDK does, so
        the server sees no other variable of this process (pass secrets there: ``args``
        appear in messages). ``prefix`` goes before each tool's name ("git" offers
        ``git_status`` as ``git_git_status``); ``overrides`` set a tool's effect,
        idempotent, scopes, cost_usd, sensitive or timeout by its name; ``include`` keeps
        only the tools it names, ``exclude`` leaves those out. ``call_timeout`` bounds one
        call of any of its tools (seconds; None: no limit but the run's deadline).
        """
        return cls(
            stdio_transport(name, command, args, env, cwd),
            name=name,
            prefix=prefix,
            overrides=overrides,
            include=include,
            exclude=exclude,
            connect_timeout=connect_timeout,
            call_timeout=call_timeout,
        )

    @classmethod
    def http(
        cls,
        url: str,
        *,
        name: str,
        headers: Mapping[str, str] | None = None,
        prefix: str | None = None,
        overrides: Mapping[str, ToolOverride | Mapping[str, Any]] | None = None,
        include: Iterable[str] | None = None,
        exclude: Iterable[str] = (),
        connect_timeout: float = 30.0,
        call_timeout: float | None = DEFAULT_CALL_TIMEOUT,
    ) -> MCPServer:
        """A server that runs elsewhere, reached over Streamable HTTP at ``url`` (its MCP
        endpoint, e.g. ``http://127.0.0.1:8000/mcp``), with ``headers`` on every request
        (an Authorization header: its value never appears in a message). The other options
        are stdio()'s."""
        return cls(
            http_transport(name, url, headers),
            name=name,
            prefix=prefix,
            overrides=overrides,
            include=include,
            exclude=exclude,
            connect_timeout=connect_timeout,
            call_timeout=call_timeout,
        )

    # the toolset protocol ---------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def changed(self) -> bool:
        """True when the server said its tools changed (or it was started again) since
        they were last listed: the registry lists them again before the next plan."""
        return self._changed

    @property
    def transport(self) -> str:
        """ "stdio" or "http"."""
        return self._transport.kind

    async def start(self) -> None:
        """Start the server (connect) if it is not running; a ConfigError says why not."""
        try:
            await self._connected()
        except ToolError as exc:
            raise ConfigError(str(exc)) from None

    async def list_tools(self) -> list[ToolSpec]:
        """Its tools now, read from the server (every page of tools/list)."""
        connection = await self._connected()
        self._changed = False  # a change announced while listing is listed next time
        tools: list[Tool] = []
        cursor: str | None = None
        for _ in range(_MAX_PAGES):
            page = await connection.client.list_tools(cursor=cursor)
            tools += page.tools
            cursor = page.next_cursor
            if not cursor:
                break
        specs = self._specs_of(tools)
        self._listed_once = True
        return specs

    async def call(self, spec: ToolSpec, args: dict[str, Any], ctx: ToolContext) -> Any:
        """Call one of its tools on validated arguments, the idempotency key in ``_meta``."""
        import anyio
        from mcp.shared.exceptions import MCPError
        from mcp.types import CONNECTION_CLOSED, CallToolRequest, CallToolRequestParams
        from mcp.types import CallToolResult as Result
        from pydantic import ValidationError

        remote = self._remote.get(spec.name, spec.name)
        connection = await self._connected()
        params = {
            "name": remote,
            "arguments": args,
            "_meta": {IDEMPOTENCY_KEY_META: ctx.idempotency_key},
        }
        request = CallToolRequest(params=CallToolRequestParams.model_validate(params))
        try:
            # send_request, not call_tool: call_tool raises on a result off its outputSchema
            # and the result is lost; here verify checks it, as it checks any tool's result.
            result = await connection.client.session.send_request(request, Result)
        except MCPError as exc:
            if exc.code != CONNECTION_CLOSED:
                raise ToolError(
                    f"MCP server {self._name!r} answered the call of {remote!r} with error "
                    f"{exc.code}: {self._given.scrub(exc.error.message)}"
                ) from None
            raise await self._lost(connection, spec, remote) from None
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            raise await self._lost(connection, spec, remote) from None
        except ValidationError as exc:
            raise ToolError(
                f"MCP server {self._name!r} answered the call of {remote!r} with something "
                f"that is not a tools/call result ({exc.error_count()} problems)"
            ) from None
        if result.is_error:
            raise ToolError(self._given.scrub(error_text(result)))
        return self._given.scrub(answer_of(result))

    async def close(self) -> None:
        """Close the session (a stdio server is stopped: stdin closed, then signals)."""
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()
        stop_scrubbing(self)

    # connecting -------------------------------------------------------------------------

    async def _connected(self) -> Connection:
        """The live connection: made on first use, made again if the server went away.

        A failure to connect is a transient ToolError (a call made now is not sent); a
        stdio command that cannot be found is a ConfigError.
        """
        if self._connecting is None:  # made here, on the loop it then belongs to
            self._connecting = asyncio.Lock()
        async with self._connecting:
            current = self._connection
            if current is not None and current.loop is not asyncio.get_running_loop():
                raise RuntimeError(
                    f"MCP server {self._name!r} was started on another event loop; a "
                    "toolset's calls run on the loop that started it (the tool loop)"
                )
            if current is not None and current.alive:
                return current
            if current is not None:
                why = await current.settled()
                logger.warning(
                    "MCP server %r went away (%s); starting a new session", self._name, why
                )
                await current.close()
                self._connection = None
            self._connection = await self._connect()
            if current is not None and self._listed_once:
                self._changed = True  # a new session: what it offers may differ now
            return self._connection

    async def _connect(self) -> Connection:
        from mcp import Client

        transport = self._transport
        holder: list[Connection] = []

        def ended() -> None:
            if holder:
                holder[0].transport_ended()

        wrapped = transport.open(self._name, ended, self._given.scrub)
        client = Client(
            wrapped,
            cache=None,
            message_handler=self._on_message,
            raise_exceptions=False,
        )
        if self._given:  # the SDK's modules are imported now: their loggers exist
            scrub_sdk_logs(self, self._given.scrub)
        connection = Connection(self._name, client, self._given.scrub)
        holder.append(connection)
        try:
            await connection.open(self._connect_timeout, watch=self._watch)
        except TimeoutError:
            raise ToolError(
                f"MCP server {self._name!r} ({transport.shown()}) did not answer within "
                f"{self._connect_timeout:g}s of being started",
                kind="transient",
            ) from None
        except (FileNotFoundError, PermissionError, NotADirectoryError) as exc:
            raise ConfigError(
                f"MCP server {self._name!r}: cannot start {transport.shown()!r}: {exc}; check "
                "the command, its arguments and cwd"
            ) from None
        except Exception as exc:
            why = connection.error or exc
            raise ToolError(
                f"MCP server {self._name!r} ({transport.shown()}) could not be reached: "
                f"{self._given.scrub(one_line(why))}",
                kind="transient",
            ) from None
        logger.info("MCP server %r connected (%s)", self._name, transport.shown())
        return connection

    async def _on_message(self, message: Any) -> None:
        """Notifications and transport errors from the session."""
        if getattr(message, "method", None) == "notifications/tools/list_changed":
            self._changed = True
        elif isinstance(message, Exception):
            # A parse error quotes the stdout line it could not read: a server's debug line.
            logger.warning("MCP server %r: %s", self._name, self._given.scrub(one_line(message)))

    async def _watch(self, client: Client) -> None:
        """On a 2026-07-28 session, ask for list changes (older ones send them unasked)."""
        from mcp.types.version import MODERN_PROTOCOL_VERSIONS

        tools = client.server_capabilities.tools
        if client.protocol_version not in MODERN_PROTOCOL_VERSIONS or not (
            tools and tools.list_changed
        ):
            return
        try:
            async with client.listen(tools_list_changed=True) as subscription:
                async for _ in subscription:
                    self._changed = True
        except Exception as exc:  # the session's end ends the subscription too
            why = self._given.scrub(str(exc))
            logger.debug("MCP server %r: list-change subscription ended: %s", self._name, why)

    async def _lost(self, connection: Connection, spec: ToolSpec, remote: str) -> Exception:
        """What a call whose connection closed under it means, by what the call may have done."""
        why = await connection.settled()
        if connection.unreachable:
            return ToolError(
                f"MCP server {self._name!r} ({self._transport.shown()}) could not be "
                f"reached, so {remote!r} was not called: {why}",
                kind="transient",
            )
        if spec.effect is Effect.READ or spec.idempotent:
            return ToolError(
                f"MCP server {self._name!r} went away during the call of {remote!r} ({why}); "
                "calling it again is safe",
                kind="transient",
            )
        return OutcomeUnknown(
            f"MCP server {self._name!r} went away during the call of {remote!r} ({why}); "
            "whether it acted is unknown"
        )

    def __repr__(self) -> str:
        return f"MCPServer.{self.transport}({self._transport.shown()!r}, name={self._name!r})"
