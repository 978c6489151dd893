"""URLs as messages show them: a database's or a server's URL with its password hidden.

A URL may carry a password (``postgresql://user:password@host/db``, ``?password=``), and
every error, log line and screen that names one shows it through here, as ``***``.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["hidden_password"]


def hidden_password(url: str) -> str:
    """``url`` with its password (in the authority or the query) shown as ***."""
    try:
        parts = urlsplit(url)
    except ValueError:  # a bracket left open: no part can be told apart, so none is shown
        scheme = url.split("://", 1)[0] if "://" in url else ""
        return f"{scheme}://***" if scheme.isalnum() else "***"
    netloc = parts.netloc
    userinfo, at, hosts = netloc.rpartition("@")
    if at and ":" in userinfo:
        netloc = f"{userinfo.split(':', 1)[0]}:***@{hosts}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k == "password" for k, _ in pairs):
            query = urlencode([(k, "***" if k == "password" else v) for k, v in pairs], safe="*")
    return urlunsplit(parts._replace(netloc=netloc, query=query))
