"""The support console's audit log: append-only, every row hash-chained to the one before it.

Every lookup and action, allowed or refused, is one row: who (actor and role), what (action, target, outcome,
details), when (recorded_at, UTC) and why (ticket id and reason). Rows are numbered 1, 2, 3, ... (``seq``) and

    row_hash = sha256(prev_hash + canonical_json(row without row_hash))      prev_hash of row 1 = 64 zeros

so editing a row changes its hash, and deleting or re-inserting one breaks the link of the row after it. DuckDB
has no triggers to forbid UPDATE and DELETE, and anyone with write access to the file could edit it: the chain
does not prevent tampering, it makes tampering detectable:

    python -m dashboards.support.audit verify            # exit 0: intact; exit 1: names the first bad row
    python -m dashboards.support.audit verify --expect-head 412:9f2c...   # also catches a truncated tail
    python -m dashboards.support.audit head              # the latest seq:hash, to keep somewhere else

Removing the newest rows leaves a shorter chain that is still valid; only a head kept outside this file (a
ticket, a log shipper: every append also logs the new head at INFO) can prove rows went missing at the end.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from dashboards.support import store
from dashboards.support.store import Clock

log = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64
ALLOWED, REFUSED = "allowed", "refused"

SCHEMA = """
create table if not exists audit_log (
    seq          bigint primary key,   -- 1, 2, 3, ... with no gaps: a gap is a deleted row
    recorded_at  timestamptz not null,
    actor        varchar not null,     -- the email the proxy vouched for, or what an unknown caller claimed
    actor_role   varchar,
    action       varchar not null,
    outcome      varchar not null,     -- allowed | refused
    target_kind  varchar,
    target       varchar,
    ticket_id    varchar,
    reason       varchar,
    details      varchar not null,     -- canonical JSON object
    prev_hash    varchar not null,
    row_hash     varchar not null
);
"""
CONTENT_FIELDS = ("seq", "recorded_at", "actor", "actor_role", "action", "outcome", "target_kind", "target",
                  "ticket_id", "reason", "details")

# Appends take turns (store.opened), so reading the head and inserting after it is never interleaved; the primary
# key on seq would refuse a fork anyway if two writers ever read the same head.


@dataclass(frozen=True)
class AuditEvent:
    actor: str
    action: str
    outcome: str
    actor_role: str | None = None
    target_kind: str | None = None
    target: str | None = None
    ticket_id: str | None = None
    reason: str | None = None
    details: dict[str, Any] | None = None


def canonical_time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def canonical_details(details: dict[str, Any] | None) -> str:
    return json.dumps(details or {}, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def row_hash(prev_hash: str, row: dict[str, Any]) -> str:
    """The hash of one row given the hash of the row before it (``row`` holds at least ``CONTENT_FIELDS``)."""
    content = {field: row[field] for field in CONTENT_FIELDS}
    content["recorded_at"] = canonical_time(content["recorded_at"])
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256((prev_hash + canonical).encode("utf-8")).hexdigest()


def append(event: AuditEvent, *, clock: Clock = store.utc_now, path: Path | None = None) -> int:
    """Append one event; returns its seq. The only write this module offers: there is no update or delete."""
    path = path or store.console_path()
    with store.opened(path, SCHEMA) as con:
        con.execute("begin transaction")
        last = con.execute("select seq, row_hash from audit_log order by seq desc limit 1").fetchone()
        seq, prev_hash = (last[0] + 1, last[1]) if last else (1, GENESIS_HASH)
        row = {"seq": seq, "recorded_at": clock().astimezone(UTC), "actor": event.actor,
               "actor_role": event.actor_role, "action": event.action, "outcome": event.outcome,
               "target_kind": event.target_kind, "target": event.target, "ticket_id": event.ticket_id,
               "reason": event.reason, "details": canonical_details(event.details)}
        row["prev_hash"], row["row_hash"] = prev_hash, row_hash(prev_hash, row)
        con.execute(f"insert into audit_log ({', '.join(row)}) values ({', '.join('$' + k for k in row)})", row)
        con.execute("commit")
    log.info("audit head %s:%s", seq, row["row_hash"])
    return seq


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[dict[str, Any]]:
    cursor = con.execute(sql, params or [])
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, values)) for values in cursor.fetchall()]


def read_all(path: Path | None = None) -> list[dict[str, Any]]:
    path = path or store.console_path()
    if not path.exists():
        return []
    with store.opened(path, None) as con:
        tables = {name for (name,) in con.execute("select table_name from information_schema.tables").fetchall()}
        return _rows(con, "select * from audit_log order by seq") if "audit_log" in tables else []


def recent(limit: int = 200, path: Path | None = None) -> list[dict[str, Any]]:
    return read_all(path)[-limit:][::-1]


@dataclass(frozen=True)
class Verification:
    rows: int
    head_seq: int
    head_hash: str
    problem: str | None = None
    position: int | None = None  # seq of the first row that fails

    @property
    def ok(self) -> bool:
        return self.problem is None


def verify_rows(rows: list[dict[str, Any]], expect_head: tuple[int, str] | None = None) -> Verification:
    """Walk the chain from row 1 and stop at the first row that does not follow from the ones before it."""
    prev_hash, expected_seq = GENESIS_HASH, 1
    for row in sorted(rows, key=lambda r: r["seq"]):
        seq = row["seq"]
        if seq != expected_seq:
            return Verification(len(rows), expected_seq - 1, prev_hash, position=expected_seq,
                                problem=f"row {expected_seq} is missing (the next row is {seq}): deleted")
        if row["prev_hash"] != prev_hash:
            return Verification(len(rows), seq - 1, prev_hash, position=seq,
                                problem=f"row {seq} does not follow row {seq - 1}: a row before it was deleted, "
                                        f"replaced or rewritten with a new hash")
        if row_hash(prev_hash, row) != row["row_hash"]:
            return Verification(len(rows), seq - 1, prev_hash, position=seq,
                                problem=f"row {seq} does not match its hash: edited")
        prev_hash, expected_seq = row["row_hash"], seq + 1
    head_seq = expected_seq - 1
    if expect_head is not None:
        want_seq, want_hash = expect_head
        if head_seq < want_seq:
            return Verification(len(rows), head_seq, prev_hash, position=head_seq + 1,
                                problem=f"the log ends at row {head_seq} but row {want_seq} was recorded: "
                                        f"rows {head_seq + 1}..{want_seq} were deleted")
        kept = next((r["row_hash"] for r in rows if r["seq"] == want_seq), None)
        if kept != want_hash:
            return Verification(len(rows), head_seq, prev_hash, position=want_seq,
                                problem=f"row {want_seq} is not the row whose hash was kept: the chain was rewritten")
    return Verification(len(rows), head_seq, prev_hash)


def verify(path: Path | None = None, expect_head: tuple[int, str] | None = None) -> Verification:
    return verify_rows(read_all(path), expect_head)


def _parse_head(text: str) -> tuple[int, str]:
    seq, _, digest = text.partition(":")
    if not seq.isdigit() or len(digest) != 64:
        raise argparse.ArgumentTypeError("expected SEQ:SHA256, as printed by `head`")
    return int(seq), digest.lower()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dashboards.support.audit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["verify", "head"])
    parser.add_argument("--db", type=Path, default=None, help="default: PITWALL_DATA_DIR/console/console.duckdb")
    parser.add_argument("--expect-head", type=_parse_head, default=None, metavar="SEQ:SHA256",
                        help="a head recorded earlier elsewhere; detects rows deleted from the end")
    args = parser.parse_args(argv)
    path = args.db or store.console_path()
    if not path.exists():
        print(f"no audit log at {path}", file=sys.stderr)
        return 2
    result = verify(path, args.expect_head)
    if args.command == "head":
        print(f"{result.head_seq}:{result.head_hash}")
        return 0 if result.ok else 1
    if result.ok:
        print(f"ok: {result.rows} rows, chain intact; head {result.head_seq}:{result.head_hash}")
        return 0
    print(f"TAMPERED at row {result.position}: {result.problem} ({path})", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
