"""Support console: look a customer or technician up, sign them out remotely, view the app as them.

Every safeguard lives in dashboards/support/ (``SupportConsole`` authorizes and audits each call); this page only
lays out what it returns. Identity comes from Streamlit's sign-in (``st.login``) or from the auth proxy's header
proven by its secret (dashboards/support/identity.py), never from a widget here.
"""

from datetime import timedelta

import polars as pl
import streamlit as st

from dashboards import data
from dashboards.support import identity, roles
from dashboards.support.console import NotDone, SupportConsole
from dashboards.support.lookup import KINDS
from dashboards.support.roles import RolesFileError

RESULT_KEY = "support_lookup_result"
REFUSAL_KEY = "support_refusal"
# What resolving a lookup needs; the sections say for themselves which of their tables are not built yet.
LOOKUP_TABLES = ["dim_users", "stg_customers", "stg_technicians", "fct_sessions"]
# How often an open view-as-user page checks that its session still runs, so that the view disappears when the
# session ends without anyone touching the page (the check is not an audited view: it reads the session only).
IMPERSONATION_CHECK_SECONDS = 2

st.title("Support console")

try:
    role_book = roles.load()
except (OSError, RolesFileError) as error:
    st.error(f"The roles file `{roles.roles_file()}` cannot be used, so nobody is let in: {error}",
             icon=":material/lock:")
    st.stop()

if REFUSAL_KEY in st.session_state:
    # This browser session was refused and the refusal audited; its headers cannot change, so a rerun would only
    # add copies of the same audit row.
    st.error(st.session_state[REFUSAL_KEY], icon=":material/lock:")
    st.stop()
who = identity.from_streamlit()
if isinstance(who, identity.Unidentified) and who.sign_in_required:
    # Sign-in is configured and this browser has not signed in: nothing was asked yet, so nothing is refused.
    if not identity.authlib_installed():
        st.error("Sign-in is configured (`[auth]` in `.streamlit/secrets.toml`) but Authlib, which `st.login` needs, "
                 "is not installed: install `streamlit[auth]`.", icon=":material/lock:")
        st.stop()
    st.info("Sign in with the company's identity provider to use the support console.", icon=":material/login:")
    if st.button("Sign in", key="support_sign_in", type="primary"):
        st.login(identity.oidc_provider())
    st.stop()
try:
    console = SupportConsole.open(who, role_book)
except NotDone as refusal:
    st.session_state[REFUSAL_KEY] = str(refusal)
    st.error(str(refusal), icon=":material/lock:")
    st.stop()
if not data.require_tables(LOOKUP_TABLES):
    st.stop()

if who.source == identity.DEV:
    st.warning(f"Development mode: signed in as `{who.email}` from {identity.DEV_USER_ENV}, without a sign-in or "
               f"the auth proxy. Never run a deployment with {identity.DEV_MODE_ENV} set.",
               icon=":material/construction:")
st.caption(f"Signed in as **{console.actor}** ({console.role.name}). Every lookup and action is audited with "
           "your name, the ticket and the reason.")
if who.source == identity.SIGN_IN and st.button("Sign out", key="support_sign_out"):
    st.logout()


def done_or_stop(call, *args, **kwargs):
    """The console's answer, or its reason for doing nothing shown in place of the rest of the page (an audit log
    that cannot be written stops everything: nothing may happen unaudited)."""
    try:
        return call(*args, **kwargs)
    except NotDone as refusal:
        st.error(str(refusal), icon=":material/block:")
        st.stop()


def show_frames(sections: dict, empty: str = "Nothing.") -> None:
    for title, frame in sections.items():
        st.subheader(title)
        if frame.is_empty():
            st.caption(empty)
            continue
        config = {}
        if "trace_id" in frame.columns:  # open the request's trace in the Trace Explorer (url_path "traces")
            frame = frame.with_columns(pl.when(pl.col("trace_id").is_not_null())
                                       .then(pl.lit("/traces?trace_id=") + pl.col("trace_id")).alias("trace_id"))
            config["trace_id"] = st.column_config.LinkColumn("trace", display_text="open trace")
        st.dataframe(frame, hide_index=True, width="stretch", column_config=config)


# --- an active "view as user" session takes over the page: read-only, bannered, until it ends or expires ----------
live = done_or_stop(console.active_impersonation)
if live is not None:
    banner = st.container()  # drawn first, filled last: the end button must be read before the view is audited
    if st.button("End view as user", key="support_end_impersonation", type="primary"):
        done_or_stop(console.end_impersonation)
        st.rerun()
    view = done_or_stop(console.view_as_user)
    banner.error(f"**Viewing the app as `{view.session.target_user_id}`** — read-only — ticket "
                 f"{view.session.ticket_id}: {view.session.reason}. Every view is audited.",
                 icon=":material/visibility:")

    @st.fragment(run_every=timedelta(seconds=IMPERSONATION_CHECK_SECONDS))
    def session_clock() -> None:
        # Reruns by itself: when the session has ended (expired, or ended in another tab) the whole page reruns
        # and the view is gone, instead of staying on screen until the lead next clicks something.
        still = done_or_stop(console.active_impersonation)
        if still is None or still.session_id != view.session.session_id:
            st.rerun(scope="app")
        minutes, seconds = divmod(int(console.remaining(still).total_seconds()), 60)
        st.caption(f"Ends by itself in {minutes} min {seconds:02d} s.")

    with banner:
        session_clock()
    show_frames(view.sections, "The app shows this user nothing here.")
    st.stop()

# --- lookup ------------------------------------------------------------------------------------------------------
with st.form("support_lookup_form"):
    kind_col, value_col, ticket_col = st.columns([1, 3, 1])
    kind = kind_col.selectbox("Look up by", list(KINDS), format_func=KINDS.get, key="support_lookup_kind")
    value = value_col.text_input("Value", key="support_lookup_value", max_chars=512,
                                 help="Emails are matched by their hash, as the warehouse stores them.")
    ticket = ticket_col.text_input("Ticket", key="support_lookup_ticket", placeholder="SUP-1234")
    if st.form_submit_button("Look up", key="support_lookup_submit"):
        try:
            st.session_state[RESULT_KEY] = console.lookup(kind, value, ticket_id=ticket)
        except NotDone as refusal:
            st.session_state.pop(RESULT_KEY, None)
            st.error(str(refusal), icon=":material/block:")

result = st.session_state.get(RESULT_KEY)
if result is not None and not result.found:
    st.info("No customer, technician or device matches.", icon=":material/person_search:")
elif result is not None and result.profile is None:
    st.warning(f"{len(result.subjects)} people used this device: choose one (opening one is another audited "
               "lookup).", icon=":material/devices:")
    chosen = st.radio("Person", [s.key for s in result.subjects], key="support_choose_subject")
    if st.button("Open", key="support_open_subject"):
        try:
            st.session_state[RESULT_KEY] = console.lookup("user_id", chosen, ticket_id=st.session_state.get(
                "support_lookup_ticket", ""))
        except NotDone as refusal:
            st.error(str(refusal), icon=":material/block:")
        st.rerun()
elif result is not None:
    profile = result.profile
    subject = profile.subject
    if profile.person:
        person = profile.person
        st.header(f"{person.get('full_name') or subject.key}")
        cols = st.columns(4)
        cols[0].metric("User id", subject.key)
        cols[1].metric("Role", person.get("role") or "—")
        cols[2].metric("Email", person.get("email_masked") or "—")
        cols[3].metric("Sessions", f"{person.get('sessions') or 0:,}")
        st.caption(f"Region {person.get('region') or '—'} · latest {person.get('platform') or '—'} "
                   f"{person.get('app_version') or ''} · last seen {person.get('last_seen_at') or '—'}")
    else:
        st.header(f"Device {subject.key}")
        st.caption("No one has signed in on this device: only the device's own data is shown.")
    if profile.missing_tables:
        st.info(f"Not built yet in the published file: {', '.join(profile.missing_tables)}.",
                icon=":material/construction:")
    show_frames(profile.sections)

    # --- remote logout --------------------------------------------------------------------------------------------
    devices = profile.sections.get("Devices and app versions")
    targets = ([("user", subject.user_id)] if subject.user_id else []) + [
        ("device", d) for d in (sorted(set(devices["device_id"].drop_nulls())) if devices is not None else [])]
    st.subheader("Remote logout")
    if not console.may("remote_logout"):
        st.caption(f"The {console.role.name} role cannot sign people out: ask a support agent.")
        filed = []  # other agents' requests name them and their reasons: only roles that file requests see them
    else:
        with st.form("support_logout_form"):
            target = st.selectbox("Revoke the sessions of", targets, key="support_logout_target",
                                  format_func=lambda t: f"{t[0]} {t[1]}" + (" (every device)" if t[0] == "user" else ""))
            ticket_col, reason_col = st.columns([1, 3])
            logout_ticket = ticket_col.text_input("Ticket", key="support_logout_ticket", placeholder="SUP-1234")
            logout_reason = reason_col.text_input("Reason", key="support_logout_reason",
                                                  placeholder="e.g. phone reported stolen, customer asked by phone")
            if st.form_submit_button("Request remote logout", key="support_logout_submit", type="primary"):
                try:
                    request, new = console.request_logout(*target, ticket_id=logout_ticket, reason=logout_reason)
                    if new:
                        st.success("Requested: the mobile backend will revoke the sessions and acknowledge here.",
                                   icon=":material/logout:")
                    else:
                        st.info("This request was already filed (same target, ticket and reason): nothing new was "
                                "sent.", icon=":material/done_all:")
                except NotDone as refusal:
                    st.error(str(refusal), icon=":material/block:")
        filed = done_or_stop(console.logout_requests, targets)
    if filed:
        st.dataframe([{"target": f"{r.target_kind} {r.target_id}", "status": r.status, "ticket": r.ticket_id,
                       "reason": r.reason, "requested by": r.requested_by, "requested at": r.created_at,
                       "acknowledged at": r.acknowledged_at, "result": r.result} for r in filed],
                     hide_index=True, width="stretch")

    # --- view as user -------------------------------------------------------------------------------------------
    if subject.user_id and console.may("impersonate"):
        st.subheader("View as user")
        with st.form("support_impersonate_form"):
            st.caption(f"Read-only view of what the app shows {subject.user_id}, for "
                       f"{int(role_book.impersonation_ttl.total_seconds() // 60)} minutes. Start, every view and "
                       "the end are audited.")
            ticket_col, reason_col = st.columns([1, 3])
            imp_ticket = ticket_col.text_input("Ticket", key="support_impersonate_ticket", placeholder="SUP-1234")
            imp_reason = reason_col.text_input("Reason", key="support_impersonate_reason")
            if st.form_submit_button("Start view as user", key="support_impersonate_submit"):
                try:
                    console.start_impersonation(subject.user_id, ticket_id=imp_ticket, reason=imp_reason)
                    st.rerun()
                except NotDone as refusal:
                    st.error(str(refusal), icon=":material/block:")

# --- the audit log ---------------------------------------------------------------------------------------------
if console.may("view_audit"):
    with st.expander("Audit log"):
        if st.button("Load the latest entries and verify the chain", key="support_audit_load"):
            rows, verification = done_or_stop(console.audit_log)
            if verification.ok:
                st.success(f"Chain intact and matching its witness: {verification.rows} rows, head "
                           f"{verification.head_seq}:{verification.head_hash[:16]}…", icon=":material/verified:")
            else:
                st.error(f"Tampered at {f'row {verification.position}' if verification.position else 'the witness'}: "
                         f"{verification.problem}", icon=":material/gpp_bad:")
            st.dataframe([{k: v for k, v in row.items() if k != "prev_hash"} for row in rows],
                         hide_index=True, width="stretch")
