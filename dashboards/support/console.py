"""The support console's one entry point: every lookup and action goes through ``SupportConsole``, which checks the
role, writes the audit row (allowed or refused) and only then does the work.

The Streamlit page only lays out what these methods return, so the safeguards hold whatever the page does, and
the tests exercise exactly what the page calls. Data leaves this module already masked for the caller's role.

The order is the safeguard: audit, then act. If the audit row cannot be written (the file is held by another
process, its witness disagrees, ...) the method raises ``Unaudited`` and nothing is done; a remote logout is filed
only after its audit row is committed, and the filed row names it. While a lead views the app as a user, the
console does nothing else for them but show that view and end it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from dashboards.support import actions, audit, impersonation, lookup, masking, store
from dashboards.support.audit import ALLOWED, FAILED, REFUSED, AuditEvent
from dashboards.support.identity import Identity, Unidentified
from dashboards.support.impersonation import ImpersonationSession, Now
from dashboards.support.roles import Role, RoleBook
from dashboards.support.store import Clock, Monotonic, utc_now

UNIDENTIFIED_ACTOR = "(unidentified)"
MAX_AUDITED_INPUT_CHARS = 256
MAX_LISTED_TARGETS = 50
WHILE_IMPERSONATING = "end the view-as-user session first: while it lasts the console only shows that view"


class NotDone(Exception):
    """The console did not do what was asked; the message says why."""


class Refused(NotDone):
    """The console said no; the refusal is already in the audit log."""


class Unaudited(NotDone):
    """The audit row could not be written, so nothing was done (and nothing was sent to the backend)."""


class NotSent(NotDone):
    """Allowed and audited, but the outbox could not be written: the backend was not asked (a ``failed`` audit row
    says so when the log could take it)."""


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
    monotonic: Monotonic = time.monotonic
    clock_domain: str | None = None  # default: impersonation.clock_domain() (the host's boot)
    published: Path | None = None  # default: PITWALL_DATA_DIR/published/pitwall.duckdb
    console_db: Path | None = None  # default: PITWALL_DATA_DIR/console/console.duckdb
    outbox_db: Path | None = None  # default: PITWALL_DATA_DIR/console/outbox.duckdb
    audit_witness: Path | None = None  # default: store.witness_path(console_db)

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

    def now(self) -> Now:
        return Now.read(self.clock, self.monotonic, self.clock_domain)

    # --- audit ------------------------------------------------------------------------------------------------

    def _audit(self, action: str, outcome: str, **fields: Any) -> int:
        event = AuditEvent(actor=self.actor, actor_role=self.role.name, action=action, outcome=outcome, **fields)
        return _record({"clock": self.clock, "console_db": self.console_db, "audit_witness": self.audit_witness},
                       event)

    def _refuse(self, action: str, message: str, **fields: Any) -> Refused:
        details = {**(fields.pop("details", None) or {}), "why": message}
        self._audit(action, REFUSED, details=details, **fields)
        return Refused(message)

    def _require(self, permission: str, action: str, **fields: Any) -> None:
        if not self.may(permission):
            raise self._refuse(action, f"the {self.role.name} role may not {permission.replace('_', ' ')}", **fields)

    def _require_not_impersonating(self, action: str, **fields: Any) -> None:
        if self._live_impersonation() is not None:
            raise self._refuse(action, WHILE_IMPERSONATING, **fields)

    # --- lookup -----------------------------------------------------------------------------------------------

    def lookup(self, kind: str, value: str, *, ticket_id: str) -> LookupResult:
        target = _audited_input(kind, value)
        fields = {"target_kind": kind, "target": target, "ticket_id": (ticket_id or "").strip()[:64] or None}
        self._require("lookup", "lookup", **fields)
        self._require_not_impersonating("lookup", **fields)
        if not actions.TICKET_SHAPE.fullmatch((ticket_id or "").strip()):
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
        # audited before anything is returned: what the agent sees is what the row says they saw
        self._audit("lookup", ALLOWED, **fields, details={
            "matches": [s.key for s in subjects], "input_chars": len(value or "")})
        if profile is not None:
            profile.person = masking.mask_record(profile.person, self.role) if profile.person else None
            profile.sections = {title: masking.mask_frame(frame, self.role) for title, frame in profile.sections.items()}
        return LookupResult(kind, subjects, profile)

    # --- remote logout ----------------------------------------------------------------------------------------

    def request_logout(self, target_kind: str, target_id: str, *, ticket_id: str,
                       reason: str) -> tuple[actions.SupportAction, bool]:
        """File a remote-logout request: audited first, then written to the outbox naming its audit row. Returns
        the request and whether it is new (False: the same request was already filed)."""
        fields = {"target_kind": target_kind, "target": (target_id or "")[:MAX_AUDITED_INPUT_CHARS],
                  "ticket_id": (ticket_id or "").strip()[:64] or None, "reason": actions.normalized_reason(reason)[:500]}
        self._require("remote_logout", "remote_logout", **fields)
        self._require_not_impersonating("remote_logout", **fields)
        try:
            prepared = actions.prepare_logout(target_kind, target_id, requested_by=self.actor, ticket_id=ticket_id,
                                              reason=reason, clock=self.clock)
        except actions.InvalidRequest as error:
            raise self._refuse("remote_logout", str(error), **fields) from None
        allowed = {"idempotency_key": prepared.idempotency_key}
        audit_seq = self._audit("remote_logout", ALLOWED, **fields, details=allowed)
        try:
            return actions.file_request(prepared, audit_seq=audit_seq, path=self.outbox_db)
        except (duckdb.Error, OSError) as error:
            why = f"the outbox could not be written ({type(error).__name__}): the backend was not asked"
            try:
                self._audit("remote_logout", FAILED, **fields, details={**allowed, "audit_seq": audit_seq, "why": why})
            except Unaudited:
                pass  # the allowed row stands without its follow-up; the outbox shows the request was never filed
            raise NotSent(why) from error

    def logout_requests(self, targets: Iterable[tuple[str, str]]) -> list[actions.SupportAction]:
        """Requests filed for the targets (kind, id), with the backend's acknowledgement when it has written one.
        They name other agents and their reasons: only roles that file requests see them, and each look is
        audited."""
        targets = list(dict.fromkeys(targets))[:MAX_LISTED_TARGETS]
        if not targets:
            return []  # nothing is looked at
        if len(targets) == 1:
            fields = {"target_kind": targets[0][0], "target": targets[0][1][:MAX_AUDITED_INPUT_CHARS]}
        else:
            fields = {"target_kind": "targets",
                      "target": "; ".join(f"{kind}:{target_id}" for kind, target_id in targets)[:MAX_AUDITED_INPUT_CHARS]}
        self._require("remote_logout", "logout_requests", **fields)
        self._require_not_impersonating("logout_requests", **fields)
        self._audit("logout_requests", ALLOWED, **fields, details={"targets": len(targets)})
        return actions.requests_for_targets(targets, path=self.outbox_db)

    # --- impersonation ----------------------------------------------------------------------------------------

    def _audit_end(self, session: ImpersonationSession) -> None:
        self._audit("impersonation_end", ALLOWED, target_kind="user", target=session.target_user_id,
                    ticket_id=session.ticket_id, reason=session.reason,
                    details={"session_id": session.session_id, "end_reason": session.end_reason,
                             "ended_at": audit.canonical_time(session.ended_at)})

    def _live_impersonation(self) -> ImpersonationSession | None:
        if not self.may("impersonate"):
            return None
        try:
            live, expired = impersonation.current(self.actor, now=self.now(), path=self.console_db)
        except (duckdb.Error, OSError) as error:  # cannot tell whether a session is live: do nothing
            raise NotDone(f"Nothing was done: the console's sessions could not be read ({error})") from error
        for session in expired:
            self._audit_end(session)
        return live

    def active_impersonation(self) -> ImpersonationSession | None:
        """The lead's live view-as-user session; an expired one is closed (and its end audited) on the way."""
        return self._live_impersonation()

    def remaining(self, session: ImpersonationSession) -> timedelta:
        """How long the session has left, by the stricter of the wall and the monotonic clock."""
        return session.remaining(self.now())

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
        session = impersonation.new_session(self.actor, user_id, ticket_id=ticket_id, reason=reason,
                                            ttl=self.roles.impersonation_ttl, now=self.now())
        self._audit("impersonation_start", ALLOWED, **fields, details={
            "session_id": session.session_id, "expires_at": audit.canonical_time(session.expires_at)})
        try:
            replaced = impersonation.start(session, path=self.console_db)
        except (duckdb.Error, OSError) as error:
            raise NotDone(f"The session could not be stored ({error}): it did not start") from error
        for earlier in replaced:
            self._audit_end(earlier)
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
        ended = impersonation.end(session, now=self.now(), path=self.console_db)
        self._audit_end(ended)
        return ended

    # --- the audit log itself ---------------------------------------------------------------------------------

    def audit_log(self, limit: int = 200) -> tuple[list[dict[str, Any]], audit.Verification]:
        """The latest rows, newest first, and the whole log verified against its chain and its witness."""
        self._require("view_audit", "view_audit")
        self._require_not_impersonating("view_audit")
        witness = self.audit_witness or store.witness_path(self.console_db or store.console_path())
        try:
            self._audit("view_audit", ALLOWED, details={"limit": limit})
        except Unaudited:
            # A tampered log refuses every append, this one too. The lead still learns what is wrong (the finding
            # shows no row), but not the rows: reading them could not be audited.
            verification = audit.verify_log(audit.read_log(self.console_db), witness)
            if verification.ok:
                raise
            return [], verification
        log = audit.read_log(self.console_db)
        return log.rows[-limit:][::-1], audit.verify_log(log, witness)


def _audited_input(kind: str, value: str | None) -> str:
    """What a lookup's audit row says was looked up: an email only as the hash it was matched by (the audit log
    must not become the place raw emails are kept), anything else as typed, clipped."""
    value = value or ""
    if kind == "email":
        return f"sha256:{lookup.email_sha256(value)}"
    return value[:MAX_AUDITED_INPUT_CHARS]


def _record(where: dict[str, Any], event: AuditEvent) -> int:
    try:
        return audit.append(event, clock=where.get("clock", utc_now), path=where.get("console_db"),
                            witness=where.get("audit_witness"))
    except audit.AuditUnavailable as error:
        raise Unaudited(f"Nothing was done: {error}") from error
