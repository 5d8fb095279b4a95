"""The support console's one entry point: every lookup and action goes through ``SupportConsole``, which checks the
role, writes the audit row (allowed or refused) and only then does the work.

The Streamlit page only lays out what these methods return, so the safeguards hold whatever the page does, and
the tests exercise exactly what the page calls. Data leaves this module already masked for the caller's role.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from dashboards.support import actions, audit, impersonation, lookup, masking
from dashboards.support.audit import ALLOWED, REFUSED, AuditEvent
from dashboards.support.identity import Identity, Unidentified
from dashboards.support.impersonation import ImpersonationSession
from dashboards.support.roles import Role, RoleBook
from dashboards.support.store import Clock, utc_now

UNIDENTIFIED_ACTOR = "(unidentified)"
MAX_AUDITED_INPUT_CHARS = 256


class Refused(Exception):
    """The console said no; the refusal is already in the audit log."""


@dataclass
class LookupResult:
    kind: str
    subjects: list[lookup.Subject]
    profile: lookup.Profile | None = None  # only when the input named exactly one subject; masked

    @property
    def found(self) -> bool:
        return bool(self.subjects)


@dataclass
class UserView:
    """What the app shows the impersonated user (masked for the lead's role) and the session it is seen under."""

    session: ImpersonationSession
    sections: dict[str, pl.DataFrame] = field(default_factory=dict)


@dataclass
class SupportConsole:
    actor: str
    role: Role
    roles: RoleBook
    clock: Clock = utc_now
    published: Path | None = None  # default: PITWALL_DATA_DIR/published/pitwall.duckdb
    console_db: Path | None = None  # default: PITWALL_DATA_DIR/console/console.duckdb
    outbox_db: Path | None = None  # default: PITWALL_DATA_DIR/console/outbox.duckdb

    # --- who --------------------------------------------------------------------------------------------------

    @classmethod
    def open(cls, identity: Identity | Unidentified, roles: RoleBook, **where: Any) -> SupportConsole:
        """The console for this identity, or Refused (audited) for anyone the roles file does not list."""
        if isinstance(identity, Unidentified):
            _record(where, AuditEvent(actor=identity.claimed or UNIDENTIFIED_ACTOR, action="access", outcome=REFUSED,
                                      details={"why": identity.why}))
            raise Refused(f"Access refused: {identity.why}.")
        role = roles.role_of(identity.email)
        if role is None:
            _record(where, AuditEvent(actor=identity.email, action="access", outcome=REFUSED,
                                      details={"why": "not in the roles file", "identity_source": identity.source}))
            raise Refused(f"Access refused: {identity.email} has no role in the support console. Ask a support "
                          "lead to add you to dashboards/support/roles.yaml (a reviewed change).")
        return cls(identity.email, role, roles, **where)

    def may(self, action: str) -> bool:
        return self.role.allows(action)

    # --- audit ------------------------------------------------------------------------------------------------

    def _audit(self, action: str, outcome: str, **fields: Any) -> None:
        audit.append(AuditEvent(actor=self.actor, actor_role=self.role.name, action=action, outcome=outcome,
                                **fields), clock=self.clock, path=self.console_db)

    def _refuse(self, action: str, message: str, **fields: Any) -> Refused:
        details = {**(fields.pop("details", None) or {}), "why": message}
        self._audit(action, REFUSED, details=details, **fields)
        return Refused(message)

    def _require(self, permission: str, action: str, **fields: Any) -> None:
        if not self.may(permission):
            raise self._refuse(action, f"the {self.role.name} role may not {permission.replace('_', ' ')}", **fields)

    # --- lookup -----------------------------------------------------------------------------------------------

    def lookup(self, kind: str, value: str, *, ticket_id: str) -> LookupResult:
        target = _audited_input(kind, value)
        fields = {"target_kind": kind, "target": target, "ticket_id": (ticket_id or "").strip()[:64] or None}
        self._require("lookup", "lookup", **fields)
        if not actions.TICKET_SHAPE.match((ticket_id or "").strip()):
            raise self._refuse("lookup", "a ticket id is required (like SUP-1234): it is why you are looking",
                               **fields)
        try:
            lookup.normalized_input(kind, value)
        except lookup.LookupInputError as error:
            raise self._refuse("lookup", str(error), **fields) from None

        con = lookup.open_published(self.published)
        try:
            subjects = lookup.resolve(con, kind, value)
            profile = lookup.profile(con, subjects[0]) if len(subjects) == 1 else None
        finally:
            con.close()
        self._audit("lookup", ALLOWED, **fields, details={
            "matches": [s.key for s in subjects], "input_chars": len(value or "")})
        if profile is not None:
            profile.person = masking.mask_record(profile.person, self.role) if profile.person else None
            profile.sections = {title: masking.mask_frame(frame, self.role) for title, frame in profile.sections.items()}
        return LookupResult(kind, subjects, profile)

    # --- remote logout ----------------------------------------------------------------------------------------

    def request_logout(self, target_kind: str, target_id: str, *, ticket_id: str,
                       reason: str) -> tuple[actions.SupportAction, bool]:
        fields = {"target_kind": target_kind, "target": (target_id or "")[:MAX_AUDITED_INPUT_CHARS],
                  "ticket_id": (ticket_id or "").strip()[:64] or None, "reason": actions.normalized_reason(reason)[:500]}
        self._require("remote_logout", "remote_logout", **fields)
        if self._live_impersonation() is not None:
            raise self._refuse("remote_logout", "end the view-as-user session first: it is read-only", **fields)
        try:
            request, new = actions.request_logout(target_kind, target_id, requested_by=self.actor,
                                                  ticket_id=ticket_id, reason=reason, clock=self.clock,
                                                  path=self.outbox_db)
        except actions.InvalidRequest as error:
            raise self._refuse("remote_logout", str(error), **fields) from None
        self._audit("remote_logout", ALLOWED, **fields,
                    details={"idempotency_key": request.idempotency_key, "new_request": new})
        return request, new

    def logout_requests(self, target_kind: str, target_id: str) -> list[actions.SupportAction]:
        """Requests filed for a target, with the backend's acknowledgement when it has written one."""
        if not self.may("lookup"):
            return []
        return actions.requests_for(target_kind, target_id, path=self.outbox_db)

    # --- impersonation ----------------------------------------------------------------------------------------

    def _audit_end(self, session: ImpersonationSession) -> None:
        self._audit("impersonation_end", ALLOWED, target_kind="user", target=session.target_user_id,
                    ticket_id=session.ticket_id, reason=session.reason,
                    details={"session_id": session.session_id, "end_reason": session.end_reason,
                             "ended_at": audit.canonical_time(session.ended_at)})

    def _live_impersonation(self) -> ImpersonationSession | None:
        if not self.may("impersonate"):
            return None
        live, expired = impersonation.current(self.actor, clock=self.clock, path=self.console_db)
        for session in expired:
            self._audit_end(session)
        return live

    def active_impersonation(self) -> ImpersonationSession | None:
        """The lead's live view-as-user session; an expired one is closed (and its end audited) on the way."""
        return self._live_impersonation()

    def start_impersonation(self, user_id: str, *, ticket_id: str, reason: str) -> ImpersonationSession:
        fields = {"target_kind": "user", "target": (user_id or "")[:MAX_AUDITED_INPUT_CHARS],
                  "ticket_id": (ticket_id or "").strip()[:64] or None, "reason": actions.normalized_reason(reason)[:500]}
        self._require("impersonate", "impersonation_start", **fields)
        try:
            ticket_id, reason = actions.check_justification(ticket_id, reason)
        except actions.InvalidRequest as error:
            raise self._refuse("impersonation_start", str(error), **fields) from None
        con = lookup.open_published(self.published)
        try:
            known = lookup.resolve(con, "user_id", user_id or "") if (user_id or "").strip() else []
        finally:
            con.close()
        if [s.user_id for s in known] != [user_id]:
            raise self._refuse("impersonation_start", "no such user in the published data", **fields)
        session, replaced = impersonation.start(self.actor, user_id, ticket_id=ticket_id, reason=reason,
                                                ttl=self.roles.impersonation_ttl, clock=self.clock,
                                                path=self.console_db)
        for earlier in replaced:
            self._audit_end(earlier)
        self._audit("impersonation_start", ALLOWED, **fields, details={
            "session_id": session.session_id, "expires_at": audit.canonical_time(session.expires_at)})
        return session

    def view_as_user(self) -> UserView:
        """What the app shows the impersonated user, read-only; every call is one audited view."""
        self._require("impersonate", "impersonation_view")
        session = self._live_impersonation()
        if session is None:
            raise self._refuse("impersonation_view", "no view-as-user session is active (it may have expired)")
        con = lookup.open_published(self.published)
        try:
            sections = lookup.app_view(con, session.target_user_id)
        finally:
            con.close()
        self._audit("impersonation_view", ALLOWED, target_kind="user", target=session.target_user_id,
                    ticket_id=session.ticket_id, reason=session.reason,
                    details={"session_id": session.session_id, "sections": sorted(sections)})
        return UserView(session, {title: masking.mask_frame(frame, self.role) for title, frame in sections.items()})

    def end_impersonation(self) -> ImpersonationSession | None:
        self._require("impersonate", "impersonation_end")
        session = self._live_impersonation()
        if session is None:
            return None
        ended = impersonation.end(session, clock=self.clock, path=self.console_db)
        self._audit_end(ended)
        return ended

    # --- the audit log itself ---------------------------------------------------------------------------------

    def audit_log(self, limit: int = 200) -> tuple[list[dict[str, Any]], audit.Verification]:
        self._require("view_audit", "view_audit")
        self._audit("view_audit", ALLOWED, details={"limit": limit})
        rows = audit.read_all(self.console_db)
        return rows[-limit:][::-1], audit.verify_rows(rows)


def _audited_input(kind: str, value: str | None) -> str:
    """What a lookup's audit row says was looked up: an email only as the hash it was matched by (the audit log
    must not become the place raw emails are kept), anything else as typed, clipped."""
    value = value or ""
    if kind == "email":
        return f"sha256:{lookup.email_sha256(value)}"
    return value[:MAX_AUDITED_INPUT_CHARS]


def _record(where: dict[str, Any], event: AuditEvent) -> None:
    audit.append(event, clock=where.get("clock", utc_now), path=where.get("console_db"))
