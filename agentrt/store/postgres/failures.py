"""Which PostgreSQL errors a call may outlast by trying again, and which it never will.

psycopg files very different errors under ``OperationalError``: a broken connection and a
server shutting down, but also a value too long for an index (``ProgramLimitExceeded``)
and a statement cancelled by ``statement_timeout``. Only the first kind passes, so only it
is tried again (``Database.patiently``); the rest go up at once, a value too long for an
index as a ConfigError naming the column it was for.

Tried again (SQLSTATE): no SQLSTATE at all (the client lost or could not get a connection,
or the pool had none free); class 08, connection exceptions; class 40, a transaction the
server rolled back to break a deadlock or a serialization conflict (but 40002, a deferred
constraint, which fails again); class 53, resources the server ran short of (connections,
memory, disk) and gets back; 57P01-57P03 and 57P05, a server shutting down, crashed,
starting up, or ending idle sessions; 55P03, a lock another transaction held past
``lock_timeout``, which it lets go when it ends (agentrt's span writes set it short on
purpose, and try again).

Not tried again: 57014, a statement cancelled, by ``statement_timeout`` or by a person
(``pg_cancel_backend``). Either is a decision that the statement should stop, not an
outage: running it again would ask the same work of the server for as long as the store's
patience lasts, past the limit its operator set.

A connection that could not be made carries no SQLSTATE at all (libpq keeps the server's
answer to itself), so a refused socket and a wrong password look alike to ``may_pass``.
``may_connect_later`` asks the server as ``pg_isready`` does (libpq's ping, asked as
``_ping`` says: to one server, without the password): nothing answered (refused, no
answer, a name not resolved yet), or the server said it is starting up, shutting down or
recovering (57P03), and waiting may help; any other answer means the server is up and
refused this connection itself (a wrong password, an unknown database, no ``pg_hba.conf``
entry), which waiting will not change. But one refusal of a server that is up: no
connection slot free (53300: ``max_connections`` reached, or the role's or the database's
``CONNECTION LIMIT``), which another client's leaving cures, as other workers stop or
their pools shrink. libpq gives no SQLSTATE for it either, only the server's message, so
it is known by the message's words (``_FULL``), as a server whose messages are in English
says them; in another language the refusal fails at once, as before.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

import psycopg
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from agentrt.errors import ConfigError

__all__ = ["INDEX_ROW_LIMIT", "may_connect_later", "may_pass", "server_full", "too_long"]

INDEX_ROW_LIMIT = 2704
"""The most bytes a btree index row holds (PostgreSQL's default 8 kB pages)."""

_PASSING_CLASSES = ("08", "40", "53")
_PASSING_STATES = frozenset({"57P01", "57P02", "57P03", "57P05", "55P03"})
_NOT_PASSING_STATES = frozenset({"40002"})

_INDEX = re.compile(r'for index "([^"]+)"')

_FULL = (
    "too many clients already",
    "too many connections for role",
    "too many connections for database",
    "remaining connection slots are reserved",
)
"""What a server says as it refuses a connection for want of a free slot (53300)."""

_NO_PASSFILE = "/nonexistent/agentrt/.pgpass"
"""A password file that is not there: the ping reads no password from ~/.pgpass either."""

_COLUMNS = (
    "SELECT c.relname AS table_name, array_agg(a.attname::text ORDER BY k.n) AS columns "
    "FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
    "CROSS JOIN unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) "
    "JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
    "WHERE i.indexrelid = to_regclass(%s) GROUP BY c.relname"
)


def may_pass(exc: psycopg.OperationalError) -> bool:
    """True if trying ``exc``'s call again may succeed: the server or the connection was
    away, or another transaction was in the way (see the module's doc)."""
    state = exc.sqlstate
    if state is None:
        return True
    if state in _NOT_PASSING_STATES:
        return False
    return state in _PASSING_STATES or state.startswith(_PASSING_CLASSES)


def may_connect_later(exc: psycopg.OperationalError, conninfo: str) -> bool:
    """True if a connection to ``conninfo`` that failed with ``exc`` may be made by waiting:
    the server is not there yet, or not taking connections yet (see the module's doc)."""
    if exc.sqlstate is not None:
        return may_pass(exc)
    if server_full(exc):
        return True
    # NO_ATTEMPT: libpq refused the parameters themselves, which waiting will not change.
    return pq.PGconn.ping(_ping(conninfo).encode()) in (pq.Ping.REJECT, pq.Ping.NO_RESPONSE)


def server_full(exc: psycopg.OperationalError) -> bool:
    """True if the server refused the connection for want of a free slot (53300)."""
    return any(words in str(exc) for words in _FULL)


def _ping(conninfo: str) -> str:
    """``conninfo`` as the ping asks with it. SSL as the server offers it: a server up
    that refuses the SSL asked of it is up, and waiting will not change its answer. To one
    server, without the password: a server that asks for one is up, and a wrong one is not
    sent again, to be logged as one more failed login. A list of hosts, or a session kind
    asked of them (``target_session_attrs``), keeps the password: the ping must get past
    the first server to reach the others, as the connection would."""
    given = conninfo_to_dict(conninfo)
    one = "," not in str(given.get("host") or "") + str(given.get("hostaddr") or "")
    if one and given.get("target_session_attrs", "any") == "any":
        return make_conninfo(conninfo, sslmode="prefer", password="", passfile=_NO_PASSFILE)
    return make_conninfo(conninfo, sslmode="prefer")


def too_long(exc: psycopg.OperationalError, pool: Any) -> ConfigError | None:
    """A ConfigError naming the column a value was too long to index for, if ``exc`` says
    so (``index row size 5016 exceeds btree version 4 maximum 2704 for index
    "runs_pkey"``); None for any other error. ``pool`` gives the connection that reads which
    columns the index covers."""
    if not isinstance(exc, psycopg.errors.ProgramLimitExceeded):
        return None
    first = (exc.diag.message_primary or str(exc)).strip().splitlines()[0]
    found = _INDEX.search(first)
    if found is None:
        return None
    index = found.group(1)
    where = f"index {index!r}"
    with contextlib.suppress(psycopg.Error):  # the error is clear enough without the columns
        with pool.connection() as conn:
            row = conn.execute(_COLUMNS, (f'"{index}"',)).fetchone()
        if row is not None:
            where = f"{where} on {row['table_name']} ({', '.join(row['columns'])})"
    return ConfigError(
        f"a value is too long for PostgreSQL to index in {where}: {first}. An index row holds "
        f"at most {INDEX_ROW_LIMIT} bytes, so give a shorter value (a thread id, tenant, "
        "principal id or key is an identifier: keep it to a few hundred characters)"
    )
