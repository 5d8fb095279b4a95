"""Find a customer or technician in the published snapshot, and everything support needs about them.

Read-only, like every dashboard: each lookup opens ``published/pitwall.duckdb`` read-only and closes it. What the
agent types travels only as a bound parameter (``$value``, ``$user``, ``$device``); the SQL text is constant.
Every section is filtered on the one subject the lookup resolved to, so a lookup shows one person's data or none:
a device used by several people resolves to a choice between them, never to all of them at once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import polars as pl

from pitwall import paths
from pitwall.duck import connect

KINDS = {"user_id": "User id", "email": "Email", "device_id": "Device id", "session_id": "Session id"}
# Longer than any id or email the warehouse holds (emails are at most 254 characters): longer input cannot match.
MAX_INPUT_CHARS = 320
RECENT_ROWS = 25


class LookupInputError(ValueError):
    """The input cannot be looked up (empty, or an unknown kind); nothing was queried."""


def email_sha256(email: str) -> str:
    """The input hashed exactly as ``stg_customers.email_sha256``: DuckDB's ``sha256(lower(trim(email)))``.

    DuckDB's ``trim`` strips spaces only, and its ``lower`` maps each character on its own (Unicode's simple case
    mapping), where Python's ``str.lower`` applies the special cases (final sigma, dotted capital I). Lowering
    character by character and keeping the first code point gives DuckDB's result (tested against DuckDB)."""
    lowered = "".join(char.lower()[0] for char in email.strip(" "))
    return hashlib.sha256(lowered.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Subject:
    """Whom a lookup shows: a user, or a device on which no user ever signed in."""

    user_id: str | None = None
    device_id: str | None = None

    @property
    def kind(self) -> str:
        return "user" if self.user_id else "device"

    @property
    def key(self) -> str:
        return self.user_id or self.device_id or ""


@dataclass
class Profile:
    subject: Subject
    person: dict | None
    sections: dict[str, pl.DataFrame] = field(default_factory=dict)
    missing_tables: list[str] = field(default_factory=list)


# --- resolving the input to a subject -------------------------------------------------------------------------

RESOLVE_SQL = {
    "user_id": """
        select user_id from dim_users where user_id = $value
        union select customer_id from stg_customers where customer_id = $value
        union select technician_id from stg_technicians where technician_id = $value
    """,
    "email": "select customer_id from stg_customers where email_sha256 = $value",
    "session_id": "select distinct user_id, device_id from fct_sessions where session_id = $value",
    "device_id": "select distinct user_id, device_id from fct_sessions where device_id = $value",
}


def _frame(con: duckdb.DuckDBPyConnection, sql: str, params: dict) -> pl.DataFrame:
    return con.sql(sql, params=params).pl()


def normalized_input(kind: str, value: str) -> str:
    if kind not in KINDS:
        raise LookupInputError(f"unknown lookup kind {kind!r}; one of {list(KINDS)}")
    value = (value or "").strip()
    if not value:
        raise LookupInputError(f"enter a {KINDS[kind].lower()} to look up")
    return value


def resolve(con: duckdb.DuckDBPyConnection, kind: str, value: str) -> list[Subject]:
    """Every subject the input names: none, one, or (a shared device) several users to choose from."""
    value = normalized_input(kind, value)
    if len(value) > MAX_INPUT_CHARS:
        return []
    param = email_sha256(value) if kind == "email" else value
    rows = _frame(con, RESOLVE_SQL[kind], {"value": param}).rows()
    if kind in {"user_id", "email"}:
        return [Subject(user_id=user_id) for (user_id,) in sorted(rows) if user_id]
    users = sorted({user_id for user_id, _ in rows if user_id})
    if users:
        return [Subject(user_id=user_id) for user_id in users]
    devices = sorted({device_id for _, device_id in rows if device_id})
    return [Subject(device_id=device_id) for device_id in devices]


# --- what support sees about one subject ----------------------------------------------------------------------

PERSON_SQL = """
    select u.user_id, u.role, u.region, coalesce(c.full_name, t.full_name) as full_name, c.email_masked,
           c.segment as customer_segment, u.platform, u.app_version, u.created_at, u.first_seen_at,
           u.last_seen_at, u.sessions
    from (select $user as user_id) as wanted
    left join dim_users as u using (user_id)
    left join stg_customers as c on c.customer_id = wanted.user_id
    left join stg_technicians as t on t.technician_id = wanted.user_id
"""

# Each section: its tables (to say "not built yet" instead of failing) and its SQL per subject kind. The user
# variant filters on $user only, the device variant on $device only.
SECTIONS: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "Devices and app versions": (("stg_events",), {
        "user": """
            select device_id, platform, device_manufacturer, device_model, os_name, os_version, app_version,
                   min(occurred_at) as first_seen_at, max(occurred_at) as last_seen_at, count(*) as events
            from stg_events where user_id = $user
            group by all order by last_seen_at desc""",
        "device": """
            select device_id, platform, device_manufacturer, device_model, os_name, os_version, app_version,
                   min(occurred_at) as first_seen_at, max(occurred_at) as last_seen_at, count(*) as events
            from stg_events where device_id = $device
            group by all order by last_seen_at desc""",
    }),
    "Recent sessions": (("fct_sessions",), {
        "user": f"""
            select session_id, started_at, ended_at, round(duration_seconds) as duration_seconds, device_id,
                   platform, release, events, crashed
            from fct_sessions where user_id = $user order by started_at desc limit {RECENT_ROWS}""",
        "device": f"""
            select session_id, started_at, ended_at, round(duration_seconds) as duration_seconds, device_id,
                   platform, release, events, crashed
            from fct_sessions where device_id = $device order by started_at desc limit {RECENT_ROWS}""",
    }),
    "Crashes": (("stg_crashes",), {
        "user": f"""
            select occurred_at, release, exception_type, exception_value, crash_frame, handled, group_id,
                   session_id, device_id, trace_id
            from stg_crashes where user_id = $user order by occurred_at desc limit {RECENT_ROWS}""",
        "device": f"""
            select occurred_at, release, exception_type, exception_value, crash_frame, handled, group_id,
                   session_id, device_id, trace_id
            from stg_crashes where device_id = $device order by occurred_at desc limit {RECENT_ROWS}""",
    }),
    # Requests carry the session, not the user: the user's requests are those of the user's sessions.
    "Failing API calls": (("fct_api_requests", "fct_sessions"), {
        "user": f"""
            select r.started_at, r.method, r.route, r.status_code, round(r.duration_ms) as duration_ms,
                   r.app_version, r.session_id, r.trace_id
            from fct_api_requests as r
            where r.is_error and r.session_id in (select session_id from fct_sessions where user_id = $user)
            order by r.started_at desc limit {2 * RECENT_ROWS}""",
        "device": f"""
            select r.started_at, r.method, r.route, r.status_code, round(r.duration_ms) as duration_ms,
                   r.app_version, r.session_id, r.trace_id
            from fct_api_requests as r
            where r.is_error and r.session_id in (select session_id from fct_sessions where device_id = $device)
            order by r.started_at desc limit {2 * RECENT_ROWS}""",
    }),
    # A funnel counts per user (login) or per job (job completion, approval): a user's job entries are those of
    # jobs they are the customer or the technician of, in the role they play there (a customer sees the approval
    # of their estimate, not the technician's checklist on their job). "Now" is the data's last event, so a
    # snapshot read a week later does not call every open entry a drop-off.
    "Funnel positions": (("int_funnel_entries", "int_funnel_entry_steps", "funnels", "funnel_steps", "stg_jobs",
                          "dim_users", "stg_events"), {
        "user": f"""
            with mine as (
                select e.funnel, e.entity_id, e.entry_day, e.entered_at, e.conversion_window_seconds
                from int_funnel_entries as e join funnels as f using (funnel)
                where e.role = (select role from dim_users where user_id = $user)
                  and ((f.entity = 'user' and e.entity_id = $user)
                       or (f.entity = 'job' and e.entity_id in (
                           select job_id from stg_jobs where customer_id = $user or technician_id = $user)))
            ),
            reached as (
                select m.funnel, m.entity_id, m.entry_day, any_value(m.entered_at) as entered_at,
                       any_value(m.conversion_window_seconds) as window_seconds,
                       max(s.step_order) as last_step, max(s.reached_at) as last_reached_at
                from mine as m join int_funnel_entry_steps as s using (funnel, entity_id, entry_day)
                group by all
            ),
            steps as (select funnel, count(*) as steps from funnel_steps group by all)
            select r.funnel, r.entity_id, r.entered_at, r.last_step || ' of ' || steps.steps as reached_step,
                   done.event_name as last_step_reached, r.last_reached_at,
                   case when r.last_step = steps.steps then 'converted'
                        when (select max(occurred_at) from stg_events)
                             < r.entered_at + to_seconds(r.window_seconds) then 'waiting at ' || next.event_name
                        else 'dropped before ' || next.event_name end as status
            from reached as r
            join steps using (funnel)
            join funnel_steps as done on done.funnel = r.funnel and done.step_order = r.last_step
            left join funnel_steps as next on next.funnel = r.funnel and next.step_order = r.last_step + 1
            order by r.entered_at desc limit {RECENT_ROWS}""",
    }),
    "Recommendations shown": (("int_recommendation_exposures",), {
        "user": f"""
            select shown_at, placement, action_id, vin, clicked_at, accepted, accepted_at, experiment_key,
                   variation_id, model_version
            from int_recommendation_exposures where user_id = $user order by shown_at desc limit {RECENT_ROWS}""",
    }),
    "Partner bookings": (("fct_partner_bookings",), {
        "user": f"""
            select booking_id, partner, service_id, vin, status, amount, currency, is_follow_up, slot_start,
                   created_at, confirmed_at, completed_at, cancelled_at
            from fct_partner_bookings where customer_id = $user order by created_at desc limit {RECENT_ROWS}""",
    }),
}

# What the apps themselves show the user: the serving tables the mobile backend reads for them. This is the
# read-only "view as user" of an impersonation session.
APP_VIEW: dict[str, tuple[tuple[str, ...], str]] = {
    "Home screen cards": (("ui_layouts",), """
        select position, card_id, pinned, layout_source, experiment_key, variation_id, valid_until
        from ui_layouts where user_id = $user order by position"""),
    "Recommendations served": (("recommendations",), """
        select placement, rank, action_id, action_kind, vin, reason_codes, valid_until
        from recommendations where user_id = $user order by placement, rank"""),
    "Review prompt": (("review_prompt_eligibility",), """
        select app_namespace, platform, is_eligible, ineligible_reason, last_prompted_at, prompts_last_365d
        from review_prompt_eligibility where user_id = $user"""),
    "Partner bookings": (("fct_partner_bookings",), SECTIONS["Partner bookings"][1]["user"]),
}


def published_tables(con: duckdb.DuckDBPyConnection) -> frozenset[str]:
    return frozenset(name for (name,) in con.execute(
        "select table_name from information_schema.tables where table_schema = 'main'").fetchall())


def profile(con: duckdb.DuckDBPyConnection, subject: Subject) -> Profile:
    tables = published_tables(con)
    params = {"user": subject.user_id} if subject.user_id else {"device": subject.device_id}
    person = None
    if subject.user_id and {"dim_users", "stg_customers", "stg_technicians"} <= tables:
        rows = _frame(con, PERSON_SQL, params).to_dicts()
        person = rows[0] if rows else None
    result = Profile(subject, person)
    for title, (needs, variants) in SECTIONS.items():
        sql = variants.get(subject.kind)
        if sql is None:
            continue  # nothing of this kind belongs to an anonymous device
        missing = [table for table in needs if table not in tables]
        if missing:
            result.missing_tables.extend(t for t in missing if t not in result.missing_tables)
            continue
        result.sections[title] = _frame(con, sql, params)
    return result


def app_view(con: duckdb.DuckDBPyConnection, user_id: str) -> dict[str, pl.DataFrame]:
    tables = published_tables(con)
    return {title: _frame(con, sql, {"user": user_id})
            for title, (needs, sql) in APP_VIEW.items() if all(t in tables for t in needs)}


def open_published(path: Path | None = None) -> duckdb.DuckDBPyConnection:
    return connect(path or paths.published_path(), read_only=True)
