"""Remote logout: requests the console writes to the ``support_actions`` outbox, which the mobile backend consumes.

The console never calls the backend. It writes a request row; the backend polls ``pending()``, revokes the
sessions and writes back ``acknowledge()`` (acknowledged_at, result), which the console then shows. An outbox
rather than an API call means a request survives the backend being down, and the row is the evidence of who
asked for what.

A request's key is derived from what it asks (action, target, ticket and reason), not generated per click, and is
the table's primary key: a double click, a rerun or two agents filing the same request on the same ticket all
land on the one existing row.

The console audits a request before it files it, and the row it files names that audit row (``audit_seq``): a
request the console could not audit is never filed, and every filed request points at the row that allowed it.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable
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
-- added after the first release: the audit row (console.duckdb) that allowed the request
alter table support_actions add column if not exists audit_seq bigint;
"""
COLUMNS = ("idempotency_key", "action", "target_kind", "target_id", "requested_by", "reason", "ticket_id",
           "created_at", "status", "acknowledged_at", "result", "audit_seq")

# Ticket ids of the usual trackers (SUP-1234, ZD#98765, INC0012345); the point is a reference someone can open.
TICKET_SHAPE = re.compile(r"[A-Za-z][A-Za-z0-9]{0,15}[-#]?[0-9]{1,12}")
MIN_REASON_CHARS, MAX_REASON_CHARS = 10, 500
MIN_REASON_ALNUM = 5  # "!!!!!!!!!!" is ten characters but no reason
MAX_TARGET_CHARS = 200
# Invisible characters: controls (Cc), formatting such as zero-width spaces and bidi overrides (Cf), surrogates,
# private-use and unassigned code points. They carry no meaning a reviewer can read, and a bidi override in an
# audited reason could make it read as something else.
INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn"})


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
    audit_seq: int | None = None  # the audit row that allowed it (None: filed before audit_seq existed)


def normalized_reason(reason: str) -> str:
    """The reason as recorded: invisible characters dropped, whitespace collapsed ("revoke  stolen phone" and
    "revoke stolen phone\u200b " are the same request)."""
    visible = "".join(c for c in (reason or "") if unicodedata.category(c) not in INVISIBLE_CATEGORIES)
    return " ".join(visible.split())


def check_justification(ticket_id: str, reason: str) -> tuple[str, str]:
    """The ticket id and reason every action needs, cleaned, or InvalidRequest saying what is missing."""
    ticket_id, reason = (ticket_id or "").strip(), normalized_reason(reason)
    if not TICKET_SHAPE.fullmatch(ticket_id):
        raise InvalidRequest("a ticket id is required (like SUP-1234)")
    shown = [c for c in reason if not c.isspace() and unicodedata.category(c)[0] in "LNPS"]
    if not (MIN_REASON_CHARS <= len(shown) and len(reason) <= MAX_REASON_CHARS
            and sum(c.isalnum() for c in shown) >= MIN_REASON_ALNUM):
        raise InvalidRequest(f"a reason of {MIN_REASON_CHARS} to {MAX_REASON_CHARS} visible characters, at least "
                             f"{MIN_REASON_ALNUM} of them letters or digits, is required")
    return ticket_id, reason


def check_target(target_kind: str, target_id: str) -> str:
    if target_kind not in TARGET_KINDS:
        raise InvalidRequest(f"target kind must be one of {TARGET_KINDS}")
    # ids are printable and carry no spaces; anything else is not an id the backend could revoke
    if not target_id or len(target_id) > MAX_TARGET_CHARS or not target_id.isprintable() \
            or any(c.isspace() for c in target_id):
        raise InvalidRequest("a target id is required")
    return target_id


def idempotency_key(action: str, target_kind: str, target_id: str, ticket_id: str, reason: str) -> str:
    payload = json.dumps([action, target_kind, target_id, ticket_id.strip().upper(), normalized_reason(reason)],
                         separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _select(con, where: str, params: dict) -> list[SupportAction]:
    cursor = con.execute(f"select {', '.join(COLUMNS)} from support_actions where {where} order by created_at desc",
                         params)
    return [SupportAction(*row) for row in cursor.fetchall()]


def prepare_logout(target_kind: str, target_id: str, *, requested_by: str, ticket_id: str, reason: str,
                   clock: Clock = store.utc_now) -> SupportAction:
    """The request as it would be filed (its key included), or InvalidRequest; writes nothing, so the console can
    audit it first. Authorization is the caller's job (``console.SupportConsole``)."""
    target_id = check_target(target_kind, target_id)
    ticket_id, reason = check_justification(ticket_id, reason)
    key = idempotency_key(REMOTE_LOGOUT, target_kind, target_id, ticket_id, reason)
    return SupportAction(key, REMOTE_LOGOUT, target_kind, target_id, requested_by, reason, ticket_id,
                         clock().astimezone(UTC), PENDING)


def file_request(request: SupportAction, *, audit_seq: int, path: Path | None = None) -> tuple[SupportAction, bool]:
    """Write a prepared request to the outbox, naming the audit row that allowed it; returns the row as stored
    and whether it is new (False: the same request was already filed, and that row is returned)."""
    row = {**request.__dict__, "audit_seq": audit_seq}
    with store.opened(path or store.outbox_path(), SCHEMA) as con:
        # "on conflict do nothing" makes the check and the insert one statement; the console's threads take turns
        # (store.opened), and should another writer's transaction still overlap, the primary key refuses the
        # second row: either way the request exists once and is answered with that one row.
        try:
            inserted = con.execute(f"""
                insert into support_actions ({', '.join(COLUMNS)}) values ({', '.join('$' + c for c in COLUMNS)})
                on conflict (idempotency_key) do nothing
                returning idempotency_key
            """, row).fetchall()
        except (duckdb.ConstraintException, duckdb.TransactionException):
            inserted = []
        (stored,) = _select(con, "idempotency_key = $key", {"key": request.idempotency_key})
    return stored, bool(inserted)


def requests_for(target_kind: str, target_id: str, path: Path | None = None) -> list[SupportAction]:
    return requests_for_targets([(target_kind, target_id)], path)


def requests_for_targets(targets: Iterable[tuple[str, str]], path: Path | None = None) -> list[SupportAction]:
    """Requests filed for any of the targets (kind, id), newest first."""
    path = path or store.outbox_path()
    targets = list(targets)
    if not path.exists() or not targets:
        return []
    with store.opened(path, SCHEMA) as con:
        where = " or ".join(f"(target_kind = $kind{n} and target_id = $target{n})" for n in range(len(targets)))
        params = {f"{name}{n}": value for n, (kind, target) in enumerate(targets)
                  for name, value in (("kind", kind), ("target", target))}
        return _select(con, where, params)


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
