"""Read-only "view as user" sessions of a support lead, with a time limit.

A session is a row in ``impersonation_sessions`` (``console.duckdb``, beside the audit log): who, whom, ticket,
reason, started_at, expires_at, and ended_at with end_reason once it ends (by the lead, by expiry, or replaced by
a new one). State lives in the file rather than in the browser session so that the limit holds across reloads,
tabs and server restarts.

The limit is kept by two clocks, and a session ends when either says so. ``expires_at`` is wall-clock time (shown,
audited); it alone would let someone extend a session by setting the host's clock back. So each session also has a
deadline on the monotonic clock (``time.monotonic``: on Linux, seconds since boot, shared by every process of the
host and never set back), valid in the clock domain it was taken in (the host's boot id). A session checked in
another domain (after a reboot, on another host) cannot be measured and ends. Both clocks are injectable for tests.

Authorization and auditing of start, view and end are ``console.SupportConsole``'s: this module only keeps time.
"""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dashboards.support import store
from dashboards.support.store import Clock, Monotonic

ENDED, EXPIRED, REPLACED = "ended", "expired", "replaced"

SCHEMA = """
create table if not exists impersonation_sessions (
    session_id      varchar primary key,
    lead            varchar not null,
    target_user_id  varchar not null,
    ticket_id       varchar not null,
    reason          varchar not null,
    started_at      timestamptz not null,
    expires_at      timestamptz not null,
    ended_at        timestamptz,
    end_reason      varchar              -- ended | expired | replaced
);
-- added after the first release: the deadline on the monotonic clock, and the boot it belongs to
alter table impersonation_sessions add column if not exists clock_domain varchar;
alter table impersonation_sessions add column if not exists deadline_monotonic double;
"""
COLUMNS = ("session_id", "lead", "target_user_id", "ticket_id", "reason", "started_at", "expires_at", "ended_at",
           "end_reason", "clock_domain", "deadline_monotonic")

_PROCESS_DOMAIN = f"process:{uuid.uuid4()}"


def clock_domain() -> str:
    """Where this process's ``time.monotonic`` readings can be compared: the boot (Linux's boot id), or, where
    the boot cannot be named, this process alone (a session then ends with the process that started it)."""
    try:
        return "boot:" + Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return _PROCESS_DOMAIN


@dataclass(frozen=True)
class Now:
    """One reading of both clocks, taken once per check so that every session is judged at the same instant."""

    wall: datetime
    monotonic: float
    domain: str

    @classmethod
    def read(cls, clock: Clock = store.utc_now, monotonic: Monotonic = time.monotonic,
             domain: str | None = None) -> Now:
        return cls(clock().astimezone(UTC), monotonic(), domain or clock_domain())


@dataclass(frozen=True)
class ImpersonationSession:
    session_id: str
    lead: str
    target_user_id: str
    ticket_id: str
    reason: str
    started_at: datetime
    expires_at: datetime
    ended_at: datetime | None = None
    end_reason: str | None = None
    clock_domain: str | None = None
    deadline_monotonic: float | None = None

    def measurable(self, now: Now) -> bool:
        return self.deadline_monotonic is not None and self.clock_domain == now.domain

    def remaining(self, now: Now) -> timedelta:
        """Time left by the stricter of the two clocks; zero once either has run out or time cannot be measured."""
        if not self.measurable(now):
            return timedelta(0)
        left = min(self.expires_at - now.wall, timedelta(seconds=self.deadline_monotonic - now.monotonic))
        return max(left, timedelta(0))

    def expired(self, now: Now) -> bool:
        return self.remaining(now) <= timedelta(0)


def new_session(lead: str, target_user_id: str, *, ticket_id: str, reason: str, ttl: timedelta,
                now: Now) -> ImpersonationSession:
    """A session starting now (not yet stored: the console audits it first, then ``start`` stores it)."""
    return ImpersonationSession(secrets.token_hex(16), lead, target_user_id, ticket_id, reason, now.wall,
                                now.wall + ttl, clock_domain=now.domain,
                                deadline_monotonic=now.monotonic + ttl.total_seconds())


def _open(path: Path | None):
    return store.opened(path or store.console_path(), SCHEMA)


def _open_sessions(con, lead: str) -> list[ImpersonationSession]:
    rows = con.execute(f"select {', '.join(COLUMNS)} from impersonation_sessions "
                       "where lead = $lead and ended_at is null order by started_at", {"lead": lead}).fetchall()
    return [ImpersonationSession(*row) for row in rows]


def _close(con, session: ImpersonationSession, at: datetime, why: str) -> ImpersonationSession:
    con.execute("update impersonation_sessions set ended_at = $at, end_reason = $why "
                "where session_id = $id and ended_at is null", {"at": at, "why": why, "id": session.session_id})
    return ImpersonationSession(**{**session.__dict__, "ended_at": at, "end_reason": why})


def _expired_at(session: ImpersonationSession, now: Now) -> datetime:
    # Measurable: it ended at its wall-clock expiry, whichever clock noticed (a clock set back does not move it).
    # Not measurable (another boot): it ended no later than now.
    return session.expires_at if session.measurable(now) else min(session.expires_at, now.wall)


def current(lead: str, *, now: Now,
            path: Path | None = None) -> tuple[ImpersonationSession | None, list[ImpersonationSession]]:
    """The lead's live session (or None), and the sessions this call found past their limit and closed, so the
    caller can audit their end."""
    with _open(path) as con:
        live, expired = None, []
        for session in _open_sessions(con, lead):
            if session.expired(now):
                expired.append(_close(con, session, _expired_at(session, now), EXPIRED))
            else:
                live = session
    return live, expired


def start(session: ImpersonationSession, *, path: Path | None = None) -> list[ImpersonationSession]:
    """Store a new session; returns the lead's earlier sessions it replaced (one at a time: the banner must name
    exactly whom the lead is looking at)."""
    with _open(path) as con:
        con.execute("begin transaction")
        replaced = [_close(con, s, session.started_at, REPLACED) for s in _open_sessions(con, session.lead)]
        con.execute(f"insert into impersonation_sessions ({', '.join(COLUMNS)}) "
                    f"values ({', '.join('$' + c for c in COLUMNS)})", session.__dict__)
        con.execute("commit")
    return replaced


def end(session: ImpersonationSession, *, now: Now, path: Path | None = None) -> ImpersonationSession:
    with _open(path) as con:
        # a wall clock set back must not date the end before the start
        return _close(con, session, max(now.wall, session.started_at), ENDED)
