"""The review queue: pages of approval requests with cursors that stay put while requests
arrive."""

from __future__ import annotations

import base64
import binascii
import json
import math
from typing import Protocol

from agentrt.approvals.model import ApprovalPage, ApprovalQuery, ApprovalRequest, ApprovalStatus
from agentrt.digests import canonical_json
from agentrt.errors import ConfigError

__all__ = ["Listing", "decode_cursor", "encode_cursor", "queue_page"]


class Listing(Protocol):
    """Where the queue's requests are read from (the store's approvals table)."""

    def list_approvals(self, query: ApprovalQuery) -> list[ApprovalRequest]: ...


def encode_cursor(request: ApprovalRequest) -> str:
    """An opaque queue position just after ``request``.

    The queue is ordered by (requested_at, id) and a page starts strictly after its cursor,
    so requests added meanwhile never shift a page or make it repeat a row.
    """
    raw = canonical_json([request.requested_at, request.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    """Inverse of encode_cursor; ConfigError for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, rid = json.loads(raw)
        if isinstance(at, bool) or not isinstance(at, int | float) or not isinstance(rid, str):
            raise ValueError(cursor)
        # Never handed out, and each would fail below: NaN matches no row (an empty page,
        # as if the queue had ended), a lone surrogate cannot reach the database.
        if not math.isfinite(at):
            raise ValueError(cursor)
        rid.encode("utf-8")
    except (ValueError, TypeError, OverflowError, binascii.Error):
        raise ConfigError(
            f"queue cursor {cursor!r} is not one this queue handed out; pass the next_cursor "
            "of the previous page, or None for the first page"
        ) from None
    return float(at), rid


def queue_page(
    store: Listing,
    status: ApprovalStatus | str | None,
    *,
    tenant: str | None,
    role: str | None,
    thread_id: str | None,
    limit: int,
    cursor: str | None,
    tool: str | None = None,
    rule_id: str | None = None,
    requested_before: float | None = None,
) -> ApprovalPage:
    """One page of the queue, oldest first; its next_cursor continues where it ended.
    ``tool``, ``rule_id`` and ``requested_before`` narrow it further (the review page's
    filters)."""
    if status is not None:
        try:
            status = ApprovalStatus(status).value
        except ValueError:
            raise ConfigError(
                f"unknown approval status {status!r}; use one of "
                f"{[s.value for s in ApprovalStatus]!r}"
            ) from None
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000:
        raise ConfigError(f"limit must be an int from 1 to 10000, got {limit!r}")
    found = store.list_approvals(
        ApprovalQuery(
            status=status,
            tenant=tenant,
            role=role,
            thread_id=thread_id,
            tool=tool,
            rule_id=rule_id,
            requested_before=requested_before,
            after=None if cursor is None else decode_cursor(cursor),
            limit=limit + 1,
        )
    )
    page = found[:limit]
    return ApprovalPage(page, encode_cursor(page[-1]) if len(found) > limit else None)
