"""Read-only "view as user" sessions of a support lead, with a time limit.

A session is a row in ``impersonation_sessions`` (``console.duckdb``, beside the audit log): who, whom, ticket,
reason, started_at, expires_at, and ended_at with end_reason once it ends (by the lead, by expiry, or replaced by
a new one). State lives in the file rather than in the browser session so that the limit holds across reloads,
tabs and server restarts. Time comes from an injectable clock so tests can move past the expiry.

Authorization and auditing of start, view and end are ``console.SupportConsole``'s: this module only keeps time.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dashboards.support import store
from dashboards.support.store import Clock

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
"""
COLUMNS = ("session_id", "lead", "target_user_id", "ticket_id", "reason", "started_at", "expires_at", "ended_at",
           "end_reason")


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

    def remaining(self, now: datetime) -> timedelta:
        return max(self.expires_at - now, timedelta(0))


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


def current(lead: str, *, clock: Clock = store.utc_now,
            path: Path | None = None) -> tuple[ImpersonationSession | None, list[ImpersonationSession]]:
    """The lead's live session (or None), and the sessions this call found past their expiry and closed, so the
    caller can audit their end. An expired session ends at its expiry time, not when someone next looks."""
    now = clock().astimezone(UTC)
    with _open(path) as con:
        live, expired = None, []
        for session in _open_sessions(con, lead):
            if session.expires_at <= now:
                expired.append(_close(con, session, session.expires_at, EXPIRED))
            else:
                live = session
    return live, expired


def start(lead: str, target_user_id: str, *, ticket_id: str, reason: str, ttl: timedelta,
          clock: Clock = store.utc_now, path: Path | None = None) -> tuple[ImpersonationSession, list[ImpersonationSession]]:
    """Open a session; returns it and the lead's earlier session it replaced, if any (one at a time: the banner
    must name exactly whom the lead is looking at)."""
    now = clock().astimezone(UTC)
    session = ImpersonationSession(secrets.token_hex(16), lead, target_user_id, ticket_id, reason, now, now + ttl)
    with _open(path) as con:
        con.execute("begin transaction")
        replaced = [_close(con, s, now, REPLACED) for s in _open_sessions(con, lead)]
        con.execute(f"insert into impersonation_sessions ({', '.join(COLUMNS)}) "
                    f"values ({', '.join('$' + c for c in COLUMNS)})", session.__dict__)
        con.execute("commit")
    return session, replaced


def end(session: ImpersonationSession, *, clock: Clock = store.utc_now,
        path: Path | None = None) -> ImpersonationSession:
    with _open(path) as con:
        return _close(con, session, clock().astimezone(UTC), ENDED)
