"""Signing a webhook as Standard Webhooks does (https://www.standardwebhooks.com), and
checking one, for receivers written in Python.

Each request carries three headers:

- ``webhook-id``: the event's id, the same on every retry (dedupe on it);
- ``webhook-timestamp``: when this send was signed, in integer epoch seconds;
- ``webhook-signature``: ``v1,`` and the base64 of HMAC-SHA256 over
  ``"{id}.{timestamp}.{body}"`` with the endpoint's key (a ``whsec_`` secret's base64
  bytes, any other secret's UTF-8 bytes). Several space-separated signatures may appear
  while a secret is rotated: one matching is enough.

A receiver checks the signature over the raw body before parsing it, and refuses a
timestamp more than a few minutes from its own clock (a replayed request).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping

__all__ = ["TOLERANCE", "SignatureError", "signature", "signed_headers", "verify"]

TOLERANCE = 300
"""Seconds a timestamp may be from the receiver's clock, either way."""


class SignatureError(ValueError):
    """A webhook request that must not be trusted: the message says why."""


def _key(secret: str | bytes) -> bytes:
    if isinstance(secret, bytes):
        return secret
    if secret.startswith("whsec_"):
        return base64.b64decode(secret.removeprefix("whsec_"))
    return secret.encode()


def signature(secret: str | bytes, event_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value for one send: ``v1,<base64 HMAC-SHA256>``."""
    signed = f"{event_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(
    secret: str | bytes, event_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """Every header of a signed send, content type included."""
    return {
        "content-type": "application/json",
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, event_id, timestamp, body),
    }


def verify(
    secret: str | bytes,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float,
    tolerance: int = TOLERANCE,
) -> str:
    """Check a request's signature and timestamp; its event id, or SignatureError.

    ``headers`` are looked up case-insensitively; ``body`` is the raw request body.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    missing = [
        h for h in ("webhook-id", "webhook-timestamp", "webhook-signature") if h not in lower
    ]
    if missing:
        raise SignatureError(f"the request lacks the header(s) {missing!r}")
    event_id = lower["webhook-id"]
    try:
        timestamp = int(lower["webhook-timestamp"])
    except ValueError:
        raise SignatureError(
            f"webhook-timestamp {lower['webhook-timestamp']!r} is not integer seconds"
        ) from None
    if abs(now - timestamp) > tolerance:
        raise SignatureError(
            f"webhook-timestamp {timestamp} is more than {tolerance} s from now ({int(now)}): "
            "a replay, or a clock that is off"
        )
    expected = signature(secret, event_id, timestamp, body).removeprefix("v1,")
    for given in lower["webhook-signature"].split():
        version, _, value = given.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return event_id
    raise SignatureError("no v1 signature in webhook-signature matches the body and the secret")
