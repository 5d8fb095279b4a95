"""Remote logout: requests the console writes to the ``support_actions`` outbox, which the mobile backend consumes.

The console never calls the backend. It writes a request row; the backend polls ``pending()``, revokes the
sessions and writes back ``acknowledge()`` (acknowledged_at, result), which the console then shows. An outbox
rather than an API call means a request survives the backend being down, and the row is the evidence of who
asked for what.

A request's key is derived from what it asks (action, target, ticket and reason), not generated per click, and is
the table's primary key: a double click, a rerun or two agents filing the same request on the same ticket all
land on the one existing row.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from dashboards.support import store
from dashboards.support.store import Clock

REMOTE_LOGOUT = "remote_logout"
TARGET_KINDS = ("user", "device")
PENDING, DONE, FAILED = "pending", "done", "failed"

SCHEMA = """
create table if not exists support_actions (
    idempotency_key  varchar primary key,  -- sha256 of action, target, ticket and reason: one row per request
    action           varchar not null,     -- remote_logout
    target_kind      varchar not null,     -- user | device
    target_id        varchar not null,
    requested_by     varchar not null,
    reason           varchar not null,
    ticket_id        varchar not null,
    created_at       timestamptz not null,
    status           varchar not null,     -- pending, then done | failed when the backend acknowledges
    acknowledged_at  timestamptz,          -- written by the backend
    result           varchar               -- written by the backend: what it revoked, or why it could not
);
"""
COLUMNS = ("idempotency_key", "action", "target_kind", "target_id", "requested_by", "reason", "ticket_id",
           "created_at", "status", "acknowledged_at", "result")

# Ticket ids of the usual trackers (SUP-1234, ZD#98765, INC0012345); the point is a reference someone can open.
TICKET_SHAPE = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,15}[-#]?[0-9]{1,12}$")
MIN_REASON_CHARS, MAX_REASON_CHARS = 10, 500


class InvalidRequest(ValueError):
    """The request is incomplete (no ticket, a one-word reason, ...); nothing was written."""


@dataclass(frozen=True)
class SupportAction:
    idempotency_key: str
    action: str
    target_kind: str
    target_id: str
    requested_by: str
    reason: str
    ticket_id: str
    created_at: datetime
    status: str
    acknowledged_at: datetime | None = None
    result: str | None = None


def normalized_reason(reason: str) -> str:
    # whitespace is not meaning: "revoke  stolen phone" and "revoke stolen phone " are the same request
    return " ".join((reason or "").split())


def check_justification(ticket_id: str, reason: str) -> tuple[str, str]:
    """The ticket id and reason every action needs, cleaned, or InvalidRequest saying what is missing."""
    ticket_id, reason = (ticket_id or "").strip(), normalized_reason(reason)
    if not TICKET_SHAPE.match(ticket_id):
        raise InvalidRequest("a ticket id is required (like SUP-1234)")
    if not MIN_REASON_CHARS <= len(reason) <= MAX_REASON_CHARS:
        raise InvalidRequest(f"a reason of {MIN_REASON_CHARS} to {MAX_REASON_CHARS} characters is required")
    return ticket_id, reason


def idempotency_key(action: str, target_kind: str, target_id: str, ticket_id: str, reason: str) -> str:
    payload = json.dumps([action, target_kind, target_id, ticket_id.strip().upper(), normalized_reason(reason)],
                         separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _select(con, where: str, params: dict) -> list[SupportAction]:
    cursor = con.execute(f"select {', '.join(COLUMNS)} from support_actions where {where} order by created_at desc",
                         params)
    return [SupportAction(*row) for row in cursor.fetchall()]


def request_logout(target_kind: str, target_id: str, *, requested_by: str, ticket_id: str, reason: str,
                   clock: Clock = store.utc_now, path: Path | None = None) -> tuple[SupportAction, bool]:
    """File a remote-logout request; returns the request and whether it is new (False: it already existed).

    Authorization is the caller's job (``console.SupportConsole``); this only writes the outbox."""
    if target_kind not in TARGET_KINDS:
        raise InvalidRequest(f"target kind must be one of {TARGET_KINDS}")
    if not target_id or len(target_id) > 200:
        raise InvalidRequest("a target id is required")
    ticket_id, reason = check_justification(ticket_id, reason)
    key = idempotency_key(REMOTE_LOGOUT, target_kind, target_id, ticket_id, reason)
    with store.opened(path or store.outbox_path(), SCHEMA) as con:
        # "on conflict do nothing" makes the check and the insert one statement; the console's threads take turns
        # (store.opened), and should another writer's transaction still overlap, the primary key refuses the
        # second row: either way the request exists once and is answered with that one row.
        try:
            inserted = con.execute("""
                insert into support_actions (idempotency_key, action, target_kind, target_id, requested_by, reason,
                                             ticket_id, created_at, status)
                values ($key, $action, $kind, $target, $by, $reason, $ticket, $now, $status)
                on conflict (idempotency_key) do nothing
                returning idempotency_key
            """, {"key": key, "action": REMOTE_LOGOUT, "kind": target_kind, "target": target_id,
                  "by": requested_by, "reason": reason, "ticket": ticket_id, "now": clock().astimezone(UTC),
                  "status": PENDING}).fetchall()
        except (duckdb.ConstraintException, duckdb.TransactionException):
            inserted = []
        (request,) = _select(con, "idempotency_key = $key", {"key": key})
    return request, bool(inserted)


def requests_for(target_kind: str, target_id: str, path: Path | None = None) -> list[SupportAction]:
    path = path or store.outbox_path()
    if not path.exists():
        return []
    with store.opened(path, SCHEMA) as con:
        return _select(con, "target_kind = $kind and target_id = $target", {"kind": target_kind, "target": target_id})


# --- the backend's side ---------------------------------------------------------------------------------------

def pending(path: Path | None = None) -> list[SupportAction]:
    """Requests the backend has not acknowledged yet, oldest first."""
    path = path or store.outbox_path()
    if not path.exists():
        return []
    with store.opened(path, SCHEMA) as con:
        return _select(con, "status = 'pending'", {})[::-1]


def acknowledge(idempotency_key: str, *, succeeded: bool, result: str, clock: Clock = store.utc_now,
                path: Path | None = None) -> bool:
    """What the backend calls after acting on a request. The first acknowledgement wins (the backend may retry);
    returns whether this call recorded it."""
    with store.opened(path or store.outbox_path(), SCHEMA) as con:
        updated = con.execute("""
            update support_actions set status = $status, acknowledged_at = $now, result = $result
            where idempotency_key = $key and acknowledged_at is null
            returning idempotency_key
        """, {"status": DONE if succeeded else FAILED, "now": clock().astimezone(UTC), "result": result[:1000],
              "key": idempotency_key}).fetchall()
    return bool(updated)
