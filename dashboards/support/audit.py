"""The support console's audit log: append-only, every row hash-chained to the one before it, and its head
witnessed outside the database.

Every lookup and action, allowed or refused, is one row: who (actor and role), what (action, target, outcome,
details), when (recorded_at, UTC) and why (ticket id and reason). Rows are numbered 1, 2, 3, ... (``seq``) and

    row_hash = sha256(prev_hash + canonical_json(row without row_hash))      prev_hash of row 1 = 64 zeros

so editing a row changes its hash, and deleting or re-inserting one breaks the link of the row after it. DuckDB
has no triggers to forbid UPDATE and DELETE, and anyone with write access to the file could edit it: the chain
does not prevent tampering, it makes tampering detectable.

A chain alone cannot show rows cut from its end (a shorter chain is still a chain), an emptied table or a dropped
one. So every append also writes the new head (``seq``, ``row_hash``) as one line to the **witness**, a file
outside the database opened for appending only (``store.witness_path``: beside the log, or
``PITWALL_SUPPORT_AUDIT_WITNESS``, which a deployment points at append-only storage or a log shipper's input).
Verification checks every witnessed head against the log: a witnessed row that is missing or has another hash, an
empty log or a missing table after witnessed rows, and rows the witness never saw are all tampering. The witness
line is written inside the append's transaction, before its commit: if it cannot be written nothing is recorded,
and an append refuses to extend a log whose head is not the witness's last line.

    python -m dashboards.support.audit verify            # exit 0: intact; 1: tampered (names the row); 2: no log
    python -m dashboards.support.audit verify --expect-head 412:9f2c...   # also against a head kept elsewhere
    python -m dashboards.support.audit head              # the latest seq:hash
    python -m dashboards.support.audit adopt             # start the witness of a log kept before it existed
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
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
# failed: allowed and audited, but the work could not be done (the outbox was unavailable); the row says why.
ALLOWED, REFUSED, FAILED = "allowed", "refused", "failed"

SCHEMA = """
create table if not exists audit_log (
    seq          bigint primary key,   -- 1, 2, 3, ... with no gaps: a gap is a deleted row
    recorded_at  timestamptz not null,
    actor        varchar not null,     -- the email the proxy vouched for, or what an unknown caller claimed
    actor_role   varchar,
    action       varchar not null,
    outcome      varchar not null,     -- allowed | refused | failed
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


class AuditUnavailable(RuntimeError):
    """The event could not be recorded (the file is locked by another process, the disk is full, the witness cannot
    be written, ...): nothing was recorded, so whatever it was about must not be done."""


class AuditTampered(AuditUnavailable):
    """The log does not end where its witness says it does: it was cut, emptied, dropped or extended outside the
    console. Nothing more is appended until someone has looked (``verify`` names the problem)."""


@dataclass(frozen=True)
class WitnessedHead:
    seq: int
    row_hash: str


def append(event: AuditEvent, *, clock: Clock = store.utc_now, path: Path | None = None,
           witness: Path | None = None) -> int:
    """Append one event; returns its seq. The only write this module offers: there is no update or delete.
    Raises AuditUnavailable (or AuditTampered) when the event could not be recorded."""
    path = path or store.console_path()
    witness = witness or store.witness_path(path)
    try:
        # A witnessed log is never created again: that would turn a deleted file or a dropped table into a fresh,
        # valid-looking log. (Checked twice: a first append elsewhere may create both between the two reads.)
        if not path.exists() and last_witnessed(witness) is not None and not path.exists():
            raise AuditTampered(f"the audit log {path} is missing but its witness {witness} recorded rows: it was "
                                "deleted; nothing more is recorded until someone has looked (`audit verify`)")
        with store.opened(path, None, writable=True) as con:
            con.execute("begin transaction")
            # the witness is read inside the file's lock, which every appender holds while it writes its line
            witnessed = last_witnessed(witness)
            if not con.execute("select count(*) from information_schema.tables where table_name = 'audit_log'"
                               ).fetchall()[0][0]:
                if witnessed is not None:
                    raise AuditTampered(_mismatch(None, witnessed, path, witness, "the audit_log table is gone"))
                con.execute(SCHEMA)
            last = next(iter(con.execute("select seq, row_hash from audit_log order by seq desc limit 1").fetchall()), None)
            head = WitnessedHead(*last) if last else None
            if head != witnessed:
                raise AuditTampered(_mismatch(head, witnessed, path, witness))
            seq, prev_hash = (head.seq + 1, head.row_hash) if head else (1, GENESIS_HASH)
            row = {"seq": seq, "recorded_at": clock().astimezone(UTC), "actor": event.actor,
                   "actor_role": event.actor_role, "action": event.action, "outcome": event.outcome,
                   "target_kind": event.target_kind, "target": event.target, "ticket_id": event.ticket_id,
                   "reason": event.reason, "details": canonical_details(event.details)}
            row["prev_hash"], row["row_hash"] = prev_hash, row_hash(prev_hash, row)
            con.execute(f"insert into audit_log ({', '.join(row)}) values ({', '.join('$' + k for k in row)})",
                        row)
            # Witness before commit: a row is never committed without its witness line. (A crash between the two
            # leaves a witnessed row the log lacks, which verify reports; the opposite order would let rows exist
            # that nothing outside the file vouches for.)
            _witness(witness, seq, row["row_hash"], row["recorded_at"])
            con.execute("commit")
    except AuditUnavailable:
        raise
    except (duckdb.Error, OSError) as error:
        raise AuditUnavailable(f"the audit log could not be written ({type(error).__name__}: {error})") from error
    log.info("audit head %s:%s", seq, row["row_hash"])
    return seq


def _mismatch(head: WitnessedHead | None, witnessed: WitnessedHead | None, path: Path, witness: Path,
              finding: str | None = None) -> str:
    def name(h):
        return f"row {h.seq} ({h.row_hash[:12]}…)" if h else "no row"
    finding = finding or f"the audit log ends at {name(head)}"
    return (f"{finding} but its witness at {name(witnessed)}: the log or the witness was changed outside the "
            f"console, and nothing more is recorded until someone has looked: run "
            f"`python -m dashboards.support.audit verify --db {path} --witness {witness}`")


# --- the witness ----------------------------------------------------------------------------------------------

class WitnessDamaged(ValueError):
    """A line of the witness is not a head this module wrote."""


def _witness(witness: Path, seq: int, digest: str, recorded_at: datetime) -> None:
    witness.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"seq": seq, "row_hash": digest, "recorded_at": canonical_time(recorded_at)},
                      separators=(",", ":")) + "\n"
    # O_APPEND: every write lands at the end, whatever anyone else did to the file; fsync: on disk before commit.
    fd = os.open(witness, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(fd, line.encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)


def _parse_witness_line(line: str, number: int) -> WitnessedHead:
    try:
        entry = json.loads(line)
        seq, digest = entry["seq"], entry["row_hash"]
    except (ValueError, TypeError, KeyError):
        raise WitnessDamaged(f"line {number} of the witness is not a head") from None
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1 or not isinstance(digest, str) \
            or not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise WitnessDamaged(f"line {number} of the witness is not a head")
    return WitnessedHead(seq, digest)


def read_witness(witness: Path) -> list[WitnessedHead]:
    """Every head witnessed, in the order written; [] when there is no witness. WitnessDamaged on a bad line."""
    try:
        text = witness.read_text(encoding="ascii")
    except FileNotFoundError:
        return []
    except UnicodeDecodeError:
        raise WitnessDamaged("the witness holds bytes this module never writes") from None
    if text and not text.endswith("\n"):
        raise WitnessDamaged("the witness's last line is cut short")
    return [_parse_witness_line(line, n) for n, line in enumerate(text.splitlines(), 1)]


def last_witnessed(witness: Path) -> WitnessedHead | None:
    """The last head witnessed (reading only the file's end: appends must not slow down as the witness grows)."""
    try:
        with open(witness, "rb") as file:
            size = file.seek(0, os.SEEK_END)
            if size == 0:
                return None
            tail = b""
            while True:
                start = max(0, size - len(tail) - 4096)
                file.seek(start)
                tail = file.read(size - start)
                if start == 0 or tail.count(b"\n") >= 2:
                    break
    except FileNotFoundError:
        return None
    if not tail.endswith(b"\n"):
        raise AuditTampered("the audit witness's last line is cut short: check it with `audit verify`")
    line = tail[:-1].rsplit(b"\n", 1)[-1]
    try:
        return _parse_witness_line(line.decode("ascii"), 0)
    except (UnicodeDecodeError, WitnessDamaged):
        raise AuditTampered("the audit witness's last line is not a head: check it with `audit verify`") from None


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> list[dict[str, Any]]:
    cursor = con.execute(sql, params or [])
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, values)) for values in cursor.fetchall()]


@dataclass(frozen=True)
class AuditLog:
    """What the log file holds: its rows, and whether the file and the table exist at all."""

    rows: list[dict[str, Any]]
    file_exists: bool
    table_exists: bool


def read_log(path: Path | None = None) -> AuditLog:
    path = path or store.console_path()
    if not path.exists():
        return AuditLog([], False, False)
    with store.opened(path, None) as con:
        tables = {name for (name,) in con.execute("select table_name from information_schema.tables").fetchall()}
        if "audit_log" not in tables:
            return AuditLog([], True, False)
        return AuditLog(_rows(con, "select * from audit_log order by seq"), True, True)


def read_all(path: Path | None = None) -> list[dict[str, Any]]:
    return read_log(path).rows


def recent(limit: int = 200, path: Path | None = None) -> list[dict[str, Any]]:
    return read_all(path)[-limit:][::-1]


@dataclass(frozen=True)
class Verification:
    rows: int
    head_seq: int
    head_hash: str
    problem: str | None = None
    position: int | None = None  # seq of the first row that fails
    witnessed: int | None = None  # heads in the witness, when the log was checked against one

    @property
    def ok(self) -> bool:
        return self.problem is None


def verify_rows(rows: list[dict[str, Any]], expect_head: tuple[int, str] | None = None,
                witnessed: list[WitnessedHead] | None = None, *, missing: str | None = None) -> Verification:
    """Walk the chain from row 1 and stop at the first row that does not follow from the ones before it; then
    hold the log against the heads kept outside it (``expect_head``, the witness's ``witnessed``), which alone can
    show rows cut from the end, an emptied log or a dropped table (``missing`` names what is gone: "the audit_log
    table", "the log file"). Without either, an empty log verifies: nothing says there ever was a row."""
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
    hashes = {r["seq"]: r["row_hash"] for r in rows}

    def tampered(position: int, problem: str) -> Verification:
        return Verification(len(rows), head_seq, prev_hash, problem, position,
                            None if witnessed is None else len(witnessed))

    kept = [] if expect_head is None else [WitnessedHead(*expect_head)]
    for source, heads in (("the head kept elsewhere", kept), ("the witness", witnessed or [])):
        last_seq = 0
        for head in heads:
            if head.seq <= last_seq:
                return tampered(head.seq, f"{source} goes back from row {last_seq} to row {head.seq}: the log was "
                                          f"emptied or dropped and started again")
            last_seq = head.seq
            if missing:
                return tampered(1, f"{missing} is missing but {source} recorded row {heads[-1].seq}: deleted")
            if not rows:
                return tampered(1, f"the audit log is empty but {source} recorded row {heads[-1].seq}: emptied")
            if head.seq > head_seq:
                return tampered(head_seq + 1, f"the log ends at row {head_seq} but {source} recorded row "
                                              f"{heads[-1].seq}: rows {head_seq + 1}..{heads[-1].seq} were deleted")
            if hashes[head.seq] != head.row_hash:
                return tampered(head.seq, f"row {head.seq} is not the row {source} recorded: the chain was "
                                          f"rewritten")
    if witnessed is not None:
        last_seen = witnessed[-1].seq if witnessed else 0
        if head_seq > last_seen:
            return tampered(last_seen + 1, f"rows {last_seen + 1}..{head_seq} are not in the witness: written "
                                           f"outside the console (or the witness was replaced)")
    return Verification(len(rows), head_seq, prev_hash, witnessed=None if witnessed is None else len(witnessed))


def verify(path: Path | None = None, expect_head: tuple[int, str] | None = None,
           witness: Path | None = None) -> Verification:
    """The log at ``path`` against its chain, its witness and (optionally) a head kept elsewhere."""
    return verify_log(read_log(path), store.witness_path(path or store.console_path()) if witness is None
                      else witness, expect_head)


def verify_log(log: AuditLog, witness: Path, expect_head: tuple[int, str] | None = None) -> Verification:
    try:
        witnessed = read_witness(witness)
    except WitnessDamaged as damage:
        return Verification(len(log.rows), 0, GENESIS_HASH, f"{damage}: it was edited", position=None)
    missing = None if log.table_exists else "the audit_log table" if log.file_exists else "the log file"
    return verify_rows(log.rows, expect_head, witnessed, missing=missing)


def adopt(path: Path, witness: Path) -> Verification:
    """Start the witness of a log kept before witnesses existed: only when the witness is empty and the chain is
    intact (a witness with entries is never rewritten; move it aside, as evidence, to adopt again)."""
    if read_witness(witness):
        raise WitnessDamaged(f"{witness} already has entries: it is not replaced")
    log = read_log(path)
    result = verify_rows(log.rows)
    if result.ok and log.rows:
        last = log.rows[-1]
        _witness(witness, last["seq"], last["row_hash"], last["recorded_at"])
    return result


def _parse_head(text: str) -> tuple[int, str]:
    seq, _, digest = text.partition(":")
    if not seq.isdigit() or len(digest) != 64:
        raise argparse.ArgumentTypeError("expected SEQ:SHA256, as printed by `head`")
    return int(seq), digest.lower()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dashboards.support.audit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["verify", "head", "adopt"])
    parser.add_argument("--db", type=Path, default=None, help="default: PITWALL_DATA_DIR/console/console.duckdb")
    parser.add_argument("--witness", type=Path, default=None,
                        help=f"default: ${store.WITNESS_ENV}, else <db>.audit-witness.jsonl beside the log")
    parser.add_argument("--expect-head", type=_parse_head, default=None, metavar="SEQ:SHA256",
                        help="a head recorded earlier elsewhere; detects rows deleted from the end")
    args = parser.parse_args(argv)
    path = args.db or store.console_path()
    witness = args.witness or store.witness_path(path)
    if args.command == "adopt":
        try:
            result = adopt(path, witness)
        except WitnessDamaged as refusal:
            print(f"not adopted: {refusal}", file=sys.stderr)
            return 1
        if not result.ok:
            print(f"not adopted: TAMPERED at row {result.position}: {result.problem}", file=sys.stderr)
            return 1
        print(f"witness {witness} starts at head {result.head_seq}:{result.head_hash}")
        return 0
    log = read_log(path)
    try:
        witnessed_any = bool(read_witness(witness))
    except WitnessDamaged:
        witnessed_any = True
    if not log.file_exists and not witnessed_any and args.expect_head is None:
        print(f"no audit log at {path} (and no witness at {witness})", file=sys.stderr)
        return 2
    result = verify_log(log, witness, args.expect_head)
    if args.command == "head":
        print(f"{result.head_seq}:{result.head_hash}")
        return 0 if result.ok else 1
    if result.ok:
        print(f"ok: {result.rows} rows, chain intact and matching its witness ({witness}); "
              f"head {result.head_seq}:{result.head_hash}")
        return 0
    where = f"row {result.position}" if result.position else "the witness"
    print(f"TAMPERED at {where}: {result.problem} ({path})", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
