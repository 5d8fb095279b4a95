"""The support console under attack (issue #16, items 5, 6 and the console parts of 7): forged and duplicated
identity headers, secrets that are not ASCII, a console with no sign-in configured, an audit log held by another
process, a log cut, emptied or dropped behind the console's back, invisible reasons, actions attempted during a
view-as-user session, other agents' requests, and clocks set back.

Every case goes through the real service (``SupportConsole`` on real DuckDB files in a temporary data root) or the
real page (Streamlit's AppTest on dashboards/views/support_console.py), and asserts what happened: the refusal, the
audit row, the outbox row or its absence, the tampering found. AppTest cannot send request headers, so header
cases call ``identity.resolve`` with Streamlit's own header class, and the page is driven through what AppTest can
set: the environment, ``st.secrets`` and ``st.user``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
import streamlit as st
from streamlit.runtime.context import StreamlitHeaders
from streamlit.testing.v1 import AppTest
from test_support_console import AGENT, LEAD, STRANGER, VIEWER, build_tiny_published

from conftest import ROOT
from dashboards.support import actions, audit, identity, impersonation, roles, store
from dashboards.support.console import NotSent, Refused, SupportConsole, Unaudited

PAGE = str(ROOT / "dashboards" / "views" / "support_console.py")
SECRET = "proxy-secret-0123456789abcdef"
BEHIND_PROXY = {identity.PROXY_SECRET_ENV: SECRET}
STOLEN_PHONE = "phone reported stolen by the customer"


class HostClocks:
    """The host's two clocks: the wall clock (which an operator can set back) and the monotonic one (which only
    moves forward, and only as time passes)."""

    def __init__(self) -> None:
        self.wall = datetime(2026, 11, 14, 9, 0, tzinfo=UTC)
        self.seconds_since_boot = 1_000.0

    def now(self) -> datetime:
        return self.wall

    def monotonic(self) -> float:
        return self.seconds_since_boot

    def let_pass(self, **delta) -> None:
        self.wall += timedelta(**delta)
        self.seconds_since_boot += timedelta(**delta).total_seconds()

    def set_wall_back(self, **delta) -> None:
        self.wall -= timedelta(**delta)


@pytest.fixture
def clocks() -> HostClocks:
    return HostClocks()


@pytest.fixture
def root(data_root) -> Path:
    """A data root (PITWALL_DATA_DIR) with the three-person published file; the console writes under console/."""
    build_tiny_published(data_root / "published" / "pitwall.duckdb")
    return data_root


@pytest.fixture
def where(root, clocks) -> dict:
    """Where a console works: the default files of the data root, the host's clocks, one boot."""
    return {"clock": clocks.now, "monotonic": clocks.monotonic, "clock_domain": "boot:test"}


@pytest.fixture
def role_book() -> roles.RoleBook:
    return roles.load(roles.DEFAULT_ROLES_FILE)


def console_as(email: str, role_book, where) -> SupportConsole:
    return SupportConsole.open(identity.Identity(email, identity.HEADER), role_book, **where)


def audit_rows() -> list[dict]:
    return audit.read_all(store.console_path())


def outbox_rows() -> list[tuple]:
    if not store.outbox_path().exists():
        return []
    con = duckdb.connect(str(store.outbox_path()), read_only=True)
    try:
        if not con.execute("select count(*) from information_schema.tables where table_name = 'support_actions'"
                           ).fetchall()[0][0]:
            return []
        return con.execute("select target_id, requested_by, reason, audit_seq from support_actions").fetchall()
    finally:
        con.close()


# === 5. identity ====================================================================================================

def test_without_configuration_a_forged_header_gets_no_one_in_and_the_attempt_is_audited(role_book, where):
    forged = StreamlitHeaders([("X-Forwarded-Email", LEAD)])
    who = identity.resolve(forged, {})
    assert isinstance(who, identity.Unidentified) and "no sign-in configured" in who.why
    with pytest.raises(Refused, match="no sign-in configured"):
        SupportConsole.open(who, role_book, **where)
    (row,) = audit_rows()
    assert (row["actor"], row["actor_role"], row["action"], row["outcome"]) == (LEAD, None, "access", "refused")
    assert "no sign-in configured" in json.loads(row["details"])["why"]


@pytest.mark.parametrize("order", [(LEAD, VIEWER), (VIEWER, LEAD)])
def test_a_duplicated_identity_header_is_refused_whichever_copy_comes_first(order):
    headers = StreamlitHeaders([("X-Forwarded-Email", order[0]), ("x-forwarded-email", order[1]),
                                (identity.PROXY_SECRET_HEADER, SECRET)])
    assert headers["X-Forwarded-Email"] == order[0]  # what a first-wins reading would have believed
    who = identity.resolve(headers, BEHIND_PROXY)
    assert isinstance(who, identity.Unidentified) and "sent 2 times" in who.why
    # a plain mapping holding the name in two spellings is two copies as well
    spelled_twice = {"X-Forwarded-Email": LEAD, "x-forwarded-email": LEAD, identity.PROXY_SECRET_HEADER: SECRET}
    assert isinstance(identity.resolve(spelled_twice, BEHIND_PROXY), identity.Unidentified)
    # one copy, with the secret: believed
    single = StreamlitHeaders([("X-Forwarded-Email", order[0]), (identity.PROXY_SECRET_HEADER, SECRET)])
    assert identity.resolve(single, BEHIND_PROXY) == identity.Identity(order[0], identity.HEADER)


def test_a_duplicated_secret_header_is_refused_even_when_one_copy_is_right():
    for copies in [(SECRET, "guess"), ("guess", SECRET), (SECRET, SECRET)]:
        headers = StreamlitHeaders([("X-Forwarded-Email", LEAD)] + [(identity.PROXY_SECRET_HEADER, c) for c in copies])
        assert isinstance(identity.resolve(headers, BEHIND_PROXY), identity.Unidentified), copies


@pytest.mark.parametrize("offered", ["", "guess", SECRET[:-1], SECRET + " ", SECRET.upper(), "é" * len(SECRET),
                                     SECRET[:-1] + "é", SECRET[:-1] + "\ud800", "\x00" * len(SECRET),
                                     SECRET + "\x00", "\ufeff" + SECRET, "ｐ" + SECRET[1:]])
def test_a_wrong_or_non_ascii_secret_is_refused_without_an_error(offered):
    headers = {"X-Forwarded-Email": LEAD, identity.PROXY_SECRET_HEADER: offered}
    who = identity.resolve(headers, BEHIND_PROXY)
    assert isinstance(who, identity.Unidentified) and "auth proxy" in who.why
    assert identity.secrets_match(offered, SECRET) is False


@pytest.mark.parametrize("configured", ["short", "sécret-with-accents-0123", "tab\tinside-0123456789", " " * 20])
def test_an_unusable_configured_secret_lets_nobody_in(configured):
    headers = {"X-Forwarded-Email": LEAD, identity.PROXY_SECRET_HEADER: configured}  # even the "matching" one
    who = identity.resolve(headers, {identity.PROXY_SECRET_ENV: configured, identity.DEV_MODE_ENV: "1",
                                     identity.DEV_USER_ENV: LEAD})
    assert isinstance(who, identity.Unidentified) and "not usable" in who.why


def test_sign_in_claims_are_the_identity_and_headers_and_dev_mode_are_ignored():
    forged = StreamlitHeaders([("X-Forwarded-Email", LEAD)])
    dev = {identity.DEV_MODE_ENV: "1", identity.DEV_USER_ENV: LEAD}
    signed_in = {"is_logged_in": True, "email": "Vera.Viewer@Example.com", "email_verified": True}
    assert identity.resolve(forged, dev, sign_in=signed_in) == identity.Identity(VIEWER, identity.SIGN_IN)

    not_yet = identity.resolve(forged, dev, sign_in={"email": LEAD})  # Streamlit's default user, no sign-in
    assert isinstance(not_yet, identity.Unidentified) and not_yet.sign_in_required
    assert identity.resolve(forged, dev, sign_in={"is_logged_in": False}).sign_in_required
    assert identity.resolve(forged, dev, sign_in={"is_logged_in": "true", "email": LEAD}).sign_in_required
    for claims in [{"is_logged_in": True},
                   {"is_logged_in": True, "email": LEAD, "email_verified": False},
                   {"is_logged_in": True, "email": "lena.lead@example.\u212aom"},  # Kelvin sign, lowers to "k"
                   {"is_logged_in": True, "email": f"{VIEWER}\r\nX-Forwarded-Email: {LEAD}"},
                   {"is_logged_in": True, "email": 7}]:
        who = identity.resolve({}, {}, sign_in=claims)
        assert isinstance(who, identity.Unidentified) and not who.sign_in_required, claims
    # behind a proxy with a secret, the secret is still required; the person still comes from the sign-in
    assert isinstance(identity.resolve(forged, BEHIND_PROXY, sign_in=signed_in), identity.Unidentified)
    proxied = StreamlitHeaders([("X-Forwarded-Email", LEAD), (identity.PROXY_SECRET_HEADER, SECRET)])
    assert identity.resolve(proxied, BEHIND_PROXY, sign_in=signed_in).email == VIEWER


def test_a_look_alike_address_does_not_normalize_onto_a_listed_one(role_book):
    kelvin = "\u212a"  # lower-cases to an ASCII "k"
    assert kelvin.lower() == "k"
    look_alike = f"{kelvin}ate@example.com"
    for who in [identity.resolve({}, {identity.DEV_MODE_ENV: "1", identity.DEV_USER_ENV: look_alike}),
                identity.resolve({}, {}, sign_in={"is_logged_in": True, "email": look_alike})]:
        assert isinstance(who, identity.Unidentified) and "not an email" in who.why


# --- the page: what a request without a proven identity gets ----------------------------------------------------

def page(monkeypatch, env: dict[str, str] | None = None, *, secrets: dict | None = None,
         user: dict | None = None) -> AppTest:
    for name in (identity.DEV_MODE_ENV, identity.DEV_USER_ENV, identity.PROXY_SECRET_ENV, identity.OIDC_PROVIDER_ENV,
                 identity.HEADER_ENV):
        monkeypatch.delenv(name, raising=False)
    for name, value in (env or {}).items():
        monkeypatch.setenv(name, value)
    at = AppTest.from_file(PAGE, default_timeout=30)
    if secrets is not None:
        at.secrets = secrets
    if user is not None:
        at.user = user
    return at.run()


def shows_the_console(at: AppTest) -> bool:
    return any(t.key == "support_lookup_value" for t in at.text_input)


OIDC = {"auth": {"redirect_uri": "https://support.example.com/oauth2callback", "cookie_secret": "x" * 32,
                 "client_id": "pitwall-support", "client_secret": "s",
                 "server_metadata_url": "https://idp.example.com/.well-known/openid-configuration"}}


def test_page_without_configuration_refuses_every_request_and_audits_it_once(root, monkeypatch):
    at = page(monkeypatch)
    assert not at.exception, [e.value for e in at.exception]
    assert any("no sign-in configured" in e.value for e in at.error) and not shows_the_console(at)
    at.run()  # the same browser session again: still refused, not audited twice
    assert not shows_the_console(at)
    assert [(r["action"], r["outcome"]) for r in audit_rows()] == [("access", "refused")]


def test_page_behind_a_proxy_secret_refuses_a_request_that_does_not_carry_it(root, monkeypatch):
    at = page(monkeypatch, BEHIND_PROXY)
    assert any("did not come through the auth proxy" in e.value for e in at.error) and not shows_the_console(at)
    at = page(monkeypatch, {identity.PROXY_SECRET_ENV: "too-short"})
    assert any("not usable" in e.value for e in at.error) and not shows_the_console(at)


def test_page_in_dev_mode_signs_in_the_dev_user_with_a_warning(root, monkeypatch):
    at = page(monkeypatch, {identity.DEV_MODE_ENV: "1", identity.DEV_USER_ENV: AGENT})
    assert shows_the_console(at)
    assert any("Development mode" in w.value for w in at.warning)
    assert any(AGENT in c.value and "support_agent" in c.value for c in at.caption)
    assert audit_rows() == []  # letting someone in is not an action; what they do next is


def test_page_with_sign_in_configured_asks_to_sign_in_and_shows_nothing_else(root, monkeypatch):
    dev = {identity.DEV_MODE_ENV: "1", identity.DEV_USER_ENV: LEAD}  # ignored once sign-in is configured
    at = page(monkeypatch, dev, secrets=OIDC, user={"email": LEAD})  # Streamlit's default user: not signed in
    assert not shows_the_console(at) and not at.warning
    if not identity.authlib_installed():
        assert any("Authlib" in e.value for e in at.error)
    assert audit_rows() == []  # nothing was asked of the console yet

    monkeypatch.setattr(identity, "authlib_installed", lambda: True)
    calls = []
    monkeypatch.setattr(st, "login", lambda provider=None: calls.append(provider))
    at = page(monkeypatch, {**dev, identity.OIDC_PROVIDER_ENV: "okta"}, secrets=OIDC, user={"is_logged_in": False})
    assert not shows_the_console(at)
    at.button(key="support_sign_in").click().run()
    assert calls == ["okta"] and not shows_the_console(at)


def test_page_with_sign_in_uses_the_signed_in_email_not_the_dev_user(root, monkeypatch):
    at = page(monkeypatch, {identity.DEV_MODE_ENV: "1", identity.DEV_USER_ENV: LEAD}, secrets=OIDC,
              user={"is_logged_in": True, "email": VIEWER, "email_verified": True})
    assert shows_the_console(at) and not at.warning
    assert any(VIEWER in c.value and "viewer" in c.value for c in at.caption)
    assert [b for b in at.button if b.key == "support_sign_out"]

    at = page(monkeypatch, secrets=OIDC, user={"is_logged_in": True, "email": STRANGER})
    assert any("has no role" in e.value for e in at.error) and not shows_the_console(at)
    assert [(r["actor"], r["outcome"], json.loads(r["details"])["identity_source"]) for r in audit_rows()] == [
        (STRANGER, "refused", identity.SIGN_IN)]


# === 6. audit loss ==================================================================================================

@contextmanager
def held_by_another_process(path: Path):
    """Another process holding a read-write connection to ``path`` (DuckDB's file lock: no one else can open it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen([sys.executable, "-c", "import duckdb, sys\ncon = duckdb.connect(sys.argv[1])\n"
                               "print('held', flush=True)\nsys.stdin.read()", str(path)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        yield
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)


def test_a_logout_is_not_sent_while_the_audit_log_is_held_by_another_process(role_book, where, monkeypatch):
    monkeypatch.setattr(store, "LOCK_RETRY_SECONDS", 0.3)
    agent = console_as(AGENT, role_book, where)
    with held_by_another_process(store.console_path()):
        with pytest.raises(Unaudited, match="could not be written"):
            agent.request_logout("user", "cust_a", ticket_id="SUP-61", reason=STOLEN_PHONE)
    assert outbox_rows() == []  # the backend was never asked
    assert audit_rows() == []

    # released: the same request is audited, then filed naming its audit row
    request, new = agent.request_logout("user", "cust_a", ticket_id="SUP-61", reason=STOLEN_PHONE)
    (row,) = audit_rows()
    assert new and (row["action"], row["outcome"], row["actor"]) == ("remote_logout", "allowed", AGENT)
    assert json.loads(row["details"]) == {"idempotency_key": request.idempotency_key}
    assert outbox_rows() == [("cust_a", AGENT, STOLEN_PHONE, row["seq"])]


def test_a_logout_whose_outbox_is_unavailable_is_audited_as_failed_and_not_sent(role_book, where, monkeypatch):
    monkeypatch.setattr(store, "LOCK_RETRY_SECONDS", 0.3)
    agent = console_as(AGENT, role_book, where)
    with held_by_another_process(store.outbox_path()):
        with pytest.raises(NotSent, match="backend was not asked"):
            agent.request_logout("device", "dev-a", ticket_id="SUP-62", reason=STOLEN_PHONE)
    assert outbox_rows() == []
    allowed, failed = audit_rows()
    assert [(r["action"], r["outcome"]) for r in (allowed, failed)] == [("remote_logout", "allowed"),
                                                                      ("remote_logout", "failed")]
    assert json.loads(failed["details"])["audit_seq"] == allowed["seq"]
    assert audit.verify(store.console_path()).ok


@pytest.fixture
def six_rows(role_book, where) -> Path:
    """Six audited lookups through the console; returns the log's path (its witness lies beside it)."""
    agent = console_as(AGENT, role_book, where)
    for n in range(6):
        agent.lookup("user_id", ["cust_a", "cust_b", "tech_c"][n % 3], ticket_id=f"SUP-{70 + n}")
    assert len(audit_rows()) == 6
    return store.console_path()


def tamper(path: Path, sql: str) -> None:
    con = duckdb.connect(str(path))
    con.execute(sql)
    con.close()


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dashboards.support.audit", *args], cwd=ROOT, capture_output=True,
                          text=True)


def test_the_witness_holds_every_head_outside_the_database(six_rows):
    witness = store.witness_path(six_rows)
    assert witness.parent == six_rows.parent and witness != six_rows
    rows = audit.read_all(six_rows)
    lines = [json.loads(line) for line in witness.read_text().splitlines()]
    assert [(e["seq"], e["row_hash"]) for e in lines] == [(r["seq"], r["row_hash"]) for r in rows]
    done = cli("verify")
    assert done.returncode == 0 and done.stdout.startswith("ok: 6 rows")


@pytest.mark.parametrize("sql, expected", [
    ("delete from audit_log where seq >= 5", "rows 5..6 were deleted"),
    ("delete from audit_log", "empty but the witness recorded row 6"),
    ("drop table audit_log", "audit_log table is missing"),
])
def test_a_cut_emptied_or_dropped_log_is_tampering(six_rows, sql, expected, role_book, where):
    tamper(six_rows, sql)
    assert audit.verify_rows(audit.read_all(six_rows)).ok  # the chain alone cannot tell
    result = audit.verify(six_rows)
    assert not result.ok and expected in result.problem
    done = cli("verify")
    assert done.returncode == 1 and "TAMPERED" in done.stderr and expected in done.stderr

    # the console refuses to extend it: every action stops, unaudited, until someone has looked
    agent = console_as(AGENT, role_book, where)
    with pytest.raises(Unaudited, match="witness"):
        agent.lookup("user_id", "cust_a", ticket_id="SUP-80")
    with pytest.raises(Unaudited):
        agent.request_logout("user", "cust_a", ticket_id="SUP-80", reason=STOLEN_PHONE)
    assert outbox_rows() == []
    # a lead's audit panel shows the finding (and no rows: reading them could not be audited)
    rows, verification = console_as(LEAD, role_book, where).audit_log()
    assert rows == [] and not verification.ok and expected in verification.problem


def test_a_deleted_log_file_is_tampering_not_a_missing_log(six_rows):
    six_rows.unlink()
    done = cli("verify")
    assert done.returncode == 1 and "the log file is missing" in done.stderr
    store.witness_path(six_rows).unlink()
    assert cli("verify").returncode == 2  # neither log nor witness: nothing was ever recorded


def rewrite_chain_from(path: Path, seq: int, **changes) -> None:
    """Edit row ``seq`` and recompute every hash after it: a chain that is consistent in itself."""
    rows = audit.read_all(path)
    prev = rows[seq - 2]["row_hash"] if seq > 1 else audit.GENESIS_HASH
    con = duckdb.connect(str(path))
    for row in rows[seq - 1:]:
        row = {**row, **(changes if row["seq"] == seq else {}), "prev_hash": prev}
        row["row_hash"] = audit.row_hash(prev, row)
        con.execute("update audit_log set target = $target, prev_hash = $prev_hash, row_hash = $row_hash "
                    "where seq = $seq", {k: row[k] for k in ("target", "prev_hash", "row_hash", "seq")})
        prev = row["row_hash"]
    con.close()


def test_a_rewritten_but_consistent_chain_is_caught_by_the_witness(six_rows):
    rewrite_chain_from(six_rows, 3, target="cust_z")
    assert audit.verify_rows(audit.read_all(six_rows)).ok
    result = audit.verify(six_rows)
    assert (result.ok, result.position) == (False, 3) and "rewritten" in result.problem


def test_rows_appended_behind_the_console_are_not_in_the_witness(six_rows):
    rows = audit.read_all(six_rows)
    forged = {**rows[-1], "seq": 7, "actor": LEAD, "target": "cust_b", "prev_hash": rows[-1]["row_hash"]}
    forged["row_hash"] = audit.row_hash(forged["prev_hash"], forged)
    con = duckdb.connect(str(six_rows))
    con.execute(f"insert into audit_log ({', '.join(forged)}) values ({', '.join('$' + k for k in forged)})", forged)
    con.close()
    result = audit.verify(six_rows)
    assert (result.ok, result.position) == (False, 7) and "not in the witness" in result.problem


def test_a_deleted_or_damaged_witness_is_tampering(six_rows):
    witness = store.witness_path(six_rows)
    lines = witness.read_text().splitlines(keepends=True)
    witness.write_text("".join(lines[:-1]) + lines[-1][:-10])  # the last line cut short
    assert not audit.verify(six_rows).ok and cli("verify").returncode == 1
    witness.write_text("".join(lines[:3]))  # the last three heads removed
    result = audit.verify(six_rows)
    assert (result.ok, result.position) == (False, 4) and "not in the witness" in result.problem
    witness.unlink()
    result = audit.verify(six_rows)
    assert (result.ok, result.position) == (False, 1) and "rows 1..6 are not in the witness" in result.problem


def test_adopt_starts_a_witness_only_for_an_intact_log_without_one(six_rows):
    witness = store.witness_path(six_rows)
    assert cli("adopt").returncode == 1  # it has a witness with entries: never replaced
    witness.rename(witness.with_suffix(".evidence"))
    done = cli("adopt")
    assert done.returncode == 0 and cli("verify").returncode == 0
    assert [json.loads(line)["seq"] for line in witness.read_text().splitlines()] == [6]
    witness.unlink()
    tamper(six_rows, "update audit_log set target = 'cust_z' where seq = 2")
    assert cli("adopt").returncode == 1 and not witness.exists()  # an edited chain is not adopted


# === 7. justification, impersonation, other agents' requests, clocks ============================================

INVISIBLE_REASONS = [
    "\u200b" * 20,                                   # zero-width spaces
    "\u200c\u200d\u2060\ufeff" * 5,                  # zero-width (non-)joiners, word joiner, BOM
    "\u202e" + "\u200b" * 9 + "ok",                  # a bidi override and two letters
    "\u0301" * 12,                                   # combining accents on nothing
    "\x00\x01\x07\x1b" * 4,                          # control characters
    " \t\n\u00a0\u3000" * 4,                          # whitespace of every kind
    "!!!!!!!!!!!!",                                  # visible, but no reason
    "a\u200bb\u200bc\u200bd\u200b" * 2,              # eight letters padded to sixteen characters
]


@pytest.mark.parametrize("reason", INVISIBLE_REASONS)
def test_a_reason_without_visible_words_is_refused(reason, role_book, where):
    assert len(reason) >= actions.MIN_REASON_CHARS  # long enough by the old count
    lead = console_as(LEAD, role_book, where)
    with pytest.raises(Refused, match="visible characters"):
        lead.request_logout("user", "cust_a", ticket_id="SUP-90", reason=reason)
    with pytest.raises(Refused, match="visible characters"):
        lead.start_impersonation("cust_a", ticket_id="SUP-90", reason=reason)
    assert [(r["action"], r["outcome"]) for r in audit_rows()] == [("remote_logout", "refused"),
                                                                 ("impersonation_start", "refused")]
    assert outbox_rows() == [] and lead.active_impersonation() is None


def test_invisible_characters_are_dropped_from_a_reason_that_has_words(role_book, where):
    agent = console_as(AGENT, role_book, where)
    plain, _ = agent.request_logout("device", "dev-a", ticket_id="SUP-91", reason=STOLEN_PHONE)
    padded, new = agent.request_logout("device", "dev-a", ticket_id="SUP-91",
                                       reason="\u202ephone\u200b reported stolen by\u2060 the customer\ufeff")
    assert not new and padded == plain and padded.reason == STOLEN_PHONE
    assert [r["reason"] for r in audit_rows()] == [STOLEN_PHONE, STOLEN_PHONE]


@pytest.mark.parametrize("target", ["", " ", "\u200b", "cust_a\u200b", "cust a", "cust_a\n", "x" * 201])
def test_a_target_that_is_not_an_id_is_refused(target, role_book, where):
    agent = console_as(AGENT, role_book, where)
    with pytest.raises(Refused, match="target id"):
        agent.request_logout("user", target, ticket_id="SUP-92", reason=STOLEN_PHONE)
    assert outbox_rows() == []


def test_while_viewing_as_a_user_the_service_refuses_everything_else(role_book, where):
    lead = console_as(LEAD, role_book, where)
    lead.start_impersonation("cust_b", ticket_id="SUP-93", reason="booking not visible to the customer")
    attempts = {
        "lookup": lambda: lead.lookup("user_id", "cust_a", ticket_id="SUP-93"),
        "view_audit": lead.audit_log,
        "logout_requests": lambda: lead.logout_requests([("user", "cust_a")]),
        "remote_logout": lambda: lead.request_logout("user", "cust_a", ticket_id="SUP-93", reason=STOLEN_PHONE),
    }
    for action, attempt in attempts.items():
        before = len(audit_rows())
        with pytest.raises(Refused, match="view-as-user"):
            attempt()
        (row,) = audit_rows()[before:]
        assert (row["action"], row["outcome"], row["actor"]) == (action, "refused", LEAD), action
    assert outbox_rows() == []
    assert lead.view_as_user().session.target_user_id == "cust_b"  # the view itself still works

    lead.end_impersonation()
    assert [s.user_id for s in lead.lookup("user_id", "cust_a", ticket_id="SUP-93").subjects] == ["cust_a"]
    assert audit.verify(store.console_path()).ok


def test_only_roles_that_file_requests_see_them_and_every_look_is_audited(role_book, where):
    agent = console_as(AGENT, role_book, where)
    agent.request_logout("user", "cust_a", ticket_id="SUP-94", reason=STOLEN_PHONE)
    viewer = console_as(VIEWER, role_book, where)
    with pytest.raises(Refused, match="may not remote logout"):
        viewer.logout_requests([("user", "cust_a")])
    lead = console_as(LEAD, role_book, where)
    seen = lead.logout_requests([("user", "cust_a"), ("device", "dev-a"), ("device", "dev-shared")])
    assert [(r.target_id, r.requested_by, r.reason) for r in seen] == [("cust_a", AGENT, STOLEN_PHONE)]
    trail = [(r["actor"], r["action"], r["outcome"], r["target"]) for r in audit_rows()]
    assert trail[1:] == [(VIEWER, "logout_requests", "refused", "cust_a"),
                         (LEAD, "logout_requests", "allowed", "user:cust_a; device:dev-a; device:dev-shared")]


def test_page_viewer_sees_no_other_agents_requests(root, role_book, where, monkeypatch):
    console_as(AGENT, role_book, where).request_logout("user", "cust_a", ticket_id="SUP-95", reason=STOLEN_PHONE)
    at = page(monkeypatch, {identity.DEV_MODE_ENV: "1", identity.DEV_USER_ENV: VIEWER})
    at.text_input(key="support_lookup_value").set_value("cust_a")
    at.text_input(key="support_lookup_ticket").set_value("SUP-95")
    at.button(key="support_lookup_submit").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("cannot sign people out" in c.value for c in at.caption)
    assert STOLEN_PHONE not in str([d.value for d in at.dataframe]) and AGENT not in str([d.value for d in at.dataframe])
    assert [r["action"] for r in audit_rows()] == ["remote_logout", "lookup"]  # no look at the requests


def test_setting_the_clock_back_does_not_extend_a_session(role_book, where, clocks):
    lead = console_as(LEAD, role_book, where)
    session = lead.start_impersonation("cust_a", ticket_id="SUP-96", reason="layout looks wrong to the customer")
    clocks.let_pass(minutes=20)
    clocks.set_wall_back(hours=2)  # the wall clock now says the session has 2 h 10 min left
    assert lead.active_impersonation() == session
    assert lead.remaining(session) == timedelta(minutes=10)  # the monotonic clock's count
    clocks.let_pass(minutes=10)
    assert lead.active_impersonation() is None
    with pytest.raises(Refused):
        lead.view_as_user()
    end = next(r for r in audit_rows() if r["action"] == "impersonation_end")
    assert json.loads(end["details"])["end_reason"] == "expired"
    assert json.loads(end["details"])["ended_at"] == audit.canonical_time(session.expires_at)


def test_a_session_from_another_boot_cannot_be_measured_and_ends(role_book, where, clocks):
    lead = console_as(LEAD, role_book, where)
    lead.start_impersonation("cust_a", ticket_id="SUP-97", reason="layout looks wrong to the customer")
    after_reboot = console_as(LEAD, role_book, {**where, "clock_domain": "boot:another",
                                                "monotonic": lambda: 5.0})  # uptime starts again
    assert after_reboot.active_impersonation() is None
    end = next(r for r in audit_rows() if r["action"] == "impersonation_end")
    assert json.loads(end["details"])["end_reason"] == "expired"


def test_the_page_rechecks_the_session_by_itself_and_drops_the_view_when_it_ends(root, role_book, monkeypatch):
    lead = SupportConsole.open(identity.Identity(LEAD, identity.DEV), role_book)  # the page's own clocks
    session = lead.start_impersonation("cust_a", ticket_id="SUP-98", reason="layout looks wrong to the customer")
    armed = []
    real_fragment = st.fragment

    def recording_fragment(func=None, *, run_every=None, **kwargs):
        armed.append(run_every)
        return real_fragment(func, run_every=run_every, **kwargs)

    monkeypatch.setattr(st, "fragment", recording_fragment)
    at = page(monkeypatch, {identity.DEV_MODE_ENV: "1", identity.DEV_USER_ENV: LEAD})
    assert not at.exception, [e.value for e in at.exception]
    assert any("Viewing the app as `cust_a`" in e.value for e in at.error) and not shows_the_console(at)
    # a timer that reruns the session check without any interaction, often enough to matter
    assert armed and armed[-1] is not None and armed[-1] <= timedelta(seconds=5)
    views = sum(r["action"] == "impersonation_view" for r in audit_rows())

    # the session runs out (its deadline moved into the past, as time would): the check's rerun drops the view
    con = duckdb.connect(str(store.console_path()))
    con.execute("update impersonation_sessions set expires_at = started_at, deadline_monotonic = 0 "
                "where session_id = $id", {"id": session.session_id})
    con.close()
    at.run()
    assert not any("Viewing the app as" in e.value for e in at.error) and shows_the_console(at)
    assert sum(r["action"] == "impersonation_view" for r in audit_rows()) == views
    assert [r["action"] for r in audit_rows()][-1] == "impersonation_end"
    assert impersonation.current(LEAD, now=lead.now())[0] is None
