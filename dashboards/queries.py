"""Every query the dashboards run, one function per query, against the published snapshot.

No Streamlit here: a benchmark (or a notebook) can open the published file and time each page's queries
through ``PAGE_QUERIES`` with ``default_filters``. Each function takes an open DuckDB connection and a
``Filters`` and returns a polars DataFrame.

Values always travel as bound parameters (``$name``); the only SQL text assembled in Python is made of
the constant column expressions in this module, chosen by key, never of user input.

The marts compute every rate at their own grain. Where a page combines rows (several days, platforms,
versions), it adds up the numerators and denominators and divides once (ratio of sums), never averages
rates. Percentiles do not add up at all: an exact percentile over an arbitrary filter is computed from
the rows beneath the mart (fct_api_requests for request durations, the funnel entry steps for times to
convert): the very rows the mart aggregates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, timedelta

import duckdb
import polars as pl

Connection = duckdb.DuckDBPyConnection


@dataclass(frozen=True)
class Filters:
    """The sidebar's global filters. Empty tuples mean "all"."""

    start: date
    end: date
    apps: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ()
    app_versions: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous(self) -> Filters:
        """The window of the same length just before this one (what Overview compares against)."""
        return replace(self, start=self.start - timedelta(days=self.days), end=self.start - timedelta(days=1))


# How each global filter applies to a table, as constant predicates over that table's columns. App and
# role are one-to-one through the apps seed, so a table with only one of them still honours both.
APP = "list_contains($apps, app_namespace)"
ROLE_BY_APP = "app_namespace in (select app_namespace from apps where list_contains($roles, role))"
ROLE = "list_contains($roles, role)"
APP_BY_ROLE = "role in (select role from apps where list_contains($apps, app_namespace))"
PLATFORM = "list_contains($platforms, platform)"
VERSION = "list_contains($app_versions, app_version)"

# Which global filters each source honours; a page says which of its sources ignore which filters.
FILTERS_BY_SOURCE: dict[str, dict[str, str]] = {
    "mart_release_health": {"apps": APP, "roles": ROLE_BY_APP, "platforms": PLATFORM, "app_versions": VERSION},
    "mart_funnel_daily": {"apps": APP_BY_ROLE, "roles": ROLE, "platforms": PLATFORM, "app_versions": VERSION},
    "int_funnel_entries": {"apps": APP_BY_ROLE, "roles": ROLE, "platforms": PLATFORM, "app_versions": VERSION},
    "mart_engagement_daily": {"apps": APP, "roles": ROLE, "platforms": PLATFORM},
    "int_user_activity_daily": {"apps": APP, "roles": ROLE, "platforms": PLATFORM},
    "mart_retention_weekly": {"apps": APP, "roles": ROLE},
    "mart_crash_groups": {"apps": APP, "roles": ROLE_BY_APP},
    # Spans carry the platform and version of the app that made the request, not the app's bundle id.
    "mart_api_latency_daily": {"platforms": PLATFORM, "app_versions": VERSION},
    "fct_api_requests": {"platforms": PLATFORM, "app_versions": VERSION},
    "mart_nps_weekly": {"apps": APP, "roles": ROLE, "app_versions": VERSION},
    "mart_csat_daily": {},
    "mart_feature_requests": {"apps": APP, "roles": ROLE_BY_APP},
    "review_prompt_eligibility": {"apps": APP, "roles": ROLE_BY_APP, "platforms": PLATFORM},
    # The gate judges each app's current rollout as of the latest data: dates and versions do not apply.
    "release_gate": {"apps": APP, "roles": ROLE_BY_APP, "platforms": PLATFORM},
    # A trace is looked up by its id, session, device or user: only the date range applies (to the
    # session, device and user lookups), a segment filter would hide what was asked for.
    "stg_spans": {},
    # An experiment is analysed over everyone it exposed, from its start to the last day of data: neither
    # the date range nor any segment filter applies (a filtered result would be another analysis).
    "mart_experiment_results": {},
    "mart_experiment_daily": {},
    # Partner data has no app, role, platform or version: only the date range applies.
    "mart_partner_sla_daily": {},
    "partner_contract_breaches": {},
    "mart_reconciliation_breaks": {},
    "mart_partner_booking_funnel": {},
    # Recommendations are tomorrow's, for every customer (serving), and the model is one for all: no filter
    # applies to them; efficacy is weekly, by placement and action, and honours the date range only.
    "recommendations": {},
    "nba_model_runs": {},
    "mart_recommendation_efficacy": {},
    "mart_recommendation_efficacy_ips": {},
}
FILTER_LABELS = {"apps": "app", "roles": "role", "platforms": "platform", "app_versions": "app version"}


def ignored_filters(*sources: str) -> list[str]:
    """Labels of the global filters that at least one of these sources cannot honour."""
    return [label for key, label in FILTER_LABELS.items()
            if any(key not in FILTERS_BY_SOURCE[source] for source in sources)]


def _where(source: str, f: Filters, day_column: str | None) -> tuple[str, dict]:
    """A where clause (without the keyword) and its parameters for ``source`` under ``f``."""
    clauses, params = [], {}
    if day_column:
        clauses.append(f"{day_column} between $start and $end")
        params.update(start=f.start, end=f.end)
    for key, predicate in FILTERS_BY_SOURCE[source].items():
        values = getattr(f, key)
        if values:
            clauses.append(predicate)
            params[key] = list(values)
    return " and ".join(clauses) or "true", params


def _frame(con: Connection, sql: str, params: dict | None = None) -> pl.DataFrame:
    frame = con.sql(sql, params=params or {}).pl()
    # DuckDB widens sum(bigint) to decimal(38, 0): counts read better (and chart better) as integers.
    return frame.with_columns(pl.col(pl.Decimal(scale=0)).cast(pl.Int64)) if frame.width else frame


def _with_previous(f: Filters) -> Filters:
    """One window covering the previous period and this one, so a KPI query reads the mart once."""
    return replace(f, start=f.previous().start)


PERIOD = "case when {day} >= $current_start then 'current' else 'previous' end"


# --- filter choices and the data's extent --------------------------------------------------------

def data_extent(con: Connection) -> pl.DataFrame:
    """First and last day with sessions: the range the date filter offers."""
    return _frame(con, "select min(day) as first_day, max(day) as last_day from mart_release_health")


def last_ingestion(con: Connection) -> pl.DataFrame:
    """When events were last ingested: a last day whose end no ingestion has seen yet is incomplete."""
    return _frame(con, "select max(ingested_at) as last_ingested_at from stg_events")


def filter_options(con: Connection) -> dict[str, list[str]]:
    """Values each global filter offers, from the release-health mart (every session has them) and the apps seed."""
    frame = _frame(con, """
        select 'apps' as dimension, app_namespace as value from apps
        union select 'roles', role from apps
        union select 'platforms', platform from mart_release_health
        union select 'app_versions', app_version from mart_release_health
    """)
    options = {key: [] for key in FILTER_LABELS}
    for dimension, value in frame.drop_nulls().sort(["dimension", "value"]).iter_rows():
        options[dimension].append(value)
    return options


def default_filters(con: Connection, days: int = 7) -> Filters:
    """The last ``days`` days of data, every app, platform, version and role."""
    last_day = data_extent(con).item(0, "last_day")
    return Filters(start=last_day - timedelta(days=days - 1), end=last_day)


# --- Overview ------------------------------------------------------------------------------------

def overview_crash_free(con: Connection, f: Filters) -> pl.DataFrame:
    """Crash-free sessions and users (user-days), this period and the previous one."""
    where, params = _where("mart_release_health", _with_previous(f), "day")
    return _frame(con, f"""
        select {PERIOD.format(day='day')} as period,
               sum(sessions) as sessions, sum(crashed_sessions) as crashed_sessions,
               1 - sum(crashed_sessions) / sum(sessions) as crash_free_sessions_rate,
               1 - sum(crashed_users) / sum(users) as crash_free_users_rate
        from mart_release_health where {where} group by all order by period
    """, {**params, "current_start": f.start})


def overview_latency(con: Connection, f: Filters) -> pl.DataFrame:
    """p95 of request duration over all routes, this period and the previous one (exact, from the spans)."""
    where, params = _where("fct_api_requests", _with_previous(f), "day")
    return _frame(con, f"""
        select {PERIOD.format(day='day')} as period, count(*) as requests,
               quantile_cont(duration_ms, 0.95) as p95_ms
        from fct_api_requests where {where} group by all order by period
    """, {**params, "current_start": f.start})


def overview_funnels(con: Connection, f: Filters) -> pl.DataFrame:
    """Each funnel's overall conversion (last step over step 1), this period and the previous one."""
    where, params = _where("mart_funnel_daily", _with_previous(f), "day")
    return _frame(con, f"""
        with last_steps as (select funnel, max(step_order) as last_step from funnel_steps group by funnel)
        select m.funnel, {PERIOD.format(day='m.day')} as period,
               sum(m.entered) filter (where m.step_order = 1) as entries,
               sum(m.entered) filter (where m.step_order = l.last_step) as conversions,
               conversions / entries as conversion_rate
        from mart_funnel_daily m join last_steps l using (funnel)
        where {where} group by all order by m.funnel, period
    """, {**params, "current_start": f.start})


def overview_nps(con: Connection, f: Filters) -> pl.DataFrame:
    """NPS over the weeks starting in this period and in the previous one."""
    where, params = _where("mart_nps_weekly", _with_previous(f), "week_start")
    return _frame(con, f"""
        select {PERIOD.format(day='week_start')} as period, sum(responses) as responses,
               100 * (sum(promoters) - sum(detractors)) / sum(responses) as nps
        from mart_nps_weekly where {where} group by all order by period
    """, {**params, "current_start": f.start})


def overview_daily_health(con: Connection, f: Filters) -> pl.DataFrame:
    """Crash-free sessions and sessions per day of this period (the Overview's sparkline)."""
    where, params = _where("mart_release_health", f, "day")
    return _frame(con, f"""
        select day, sum(sessions) as sessions, 1 - sum(crashed_sessions) / sum(sessions) as crash_free_sessions_rate
        from mart_release_health where {where} group by day order by day
    """, params)


# --- Funnels -------------------------------------------------------------------------------------

# Breakdowns a person can choose, as constant columns of mart_funnel_daily / int_funnel_entries.
FUNNEL_BREAKDOWNS = {"none": None, "platform": "platform", "app_version": "app_version", "role": "role"}


def funnel_definitions(con: Connection, f: Filters | None = None) -> pl.DataFrame:
    """The funnels seed with their steps (the global filters do not apply to definitions)."""
    return _frame(con, """
        select f.funnel, f.entity, f.conversion_window_seconds, f.description,
               string_agg(s.event_name, ' → ' order by s.step_order) as steps
        from funnels f join funnel_steps s using (funnel) group by all order by f.funnel
    """)


def _breakdown(breakdown: str) -> str:
    column = FUNNEL_BREAKDOWNS[breakdown]  # KeyError for anything not offered
    return f"coalesce(cast({column} as varchar), '(none)')" if column else "'all'"


def funnel_steps(con: Connection, f: Filters, funnel: str, breakdown: str = "none") -> pl.DataFrame:
    """Entries reaching each step, with conversion from step 1 and from the previous step, per breakdown value."""
    where, params = _where("mart_funnel_daily", f, "day")
    return _frame(con, f"""
        with steps as (
            select {_breakdown(breakdown)} as breakdown, step_order, step_event, sum(entered) as entered
            from mart_funnel_daily where funnel = $funnel and {where} group by all
        )
        select breakdown, step_order, step_event, entered,
               entered / first_value(entered) over w as converted_from_first,
               entered / lag(entered) over w as converted_from_previous
        from steps
        window w as (partition by breakdown order by step_order)
        order by breakdown, step_order
    """, {**params, "funnel": funnel})


def funnel_trend(con: Connection, f: Filters, funnel: str, breakdown: str = "none") -> pl.DataFrame:
    """Overall conversion (last step over step 1) per entry day and breakdown value."""
    where, params = _where("mart_funnel_daily", f, "day")
    return _frame(con, f"""
        with last_step as (select max(step_order) as last_step from funnel_steps where funnel = $funnel)
        select day, {_breakdown(breakdown)} as breakdown,
               sum(entered) filter (where step_order = 1) as entries,
               sum(entered) filter (where step_order = (select last_step from last_step)) as conversions,
               conversions / entries as conversion_rate
        from mart_funnel_daily where funnel = $funnel and {where} group by all order by day, breakdown
    """, {**params, "funnel": funnel})


def funnel_time_to_convert(con: Connection, f: Filters, funnel: str) -> pl.DataFrame:
    """Median and p90 time from entry to each step over the whole window (exact, from the entry steps
    mart_funnel_daily is built on; the mart's daily percentiles cannot be combined)."""
    where, params = _where("int_funnel_entries", f, "entry_day")
    return _frame(con, f"""
        with entries as (
            select funnel, entity_id, entered_at from int_funnel_entries where funnel = $funnel and {where}
        )
        select s.step_order, s.event_name as step_event, count(*) as reached,
               median(s.seconds_from_entry) as median_seconds,
               quantile_cont(s.seconds_from_entry, 0.9) as p90_seconds
        from int_funnel_entry_steps s join entries using (funnel, entity_id, entered_at)
        group by all order by s.step_order
    """, {**params, "funnel": funnel})


# --- Engagement & Retention ----------------------------------------------------------------------

def engagement_daily(con: Connection, f: Filters) -> pl.DataFrame:
    """DAU, WAU, MAU of the selected segments per day, each person once (distinct over the activity the
    mart is built on, so someone active on two platforms or apps is not counted twice)."""
    where, params = _where("int_user_activity_daily", f, None)
    return _frame(con, f"""
        with activity as (
            select user_key, day from int_user_activity_daily
            where day between $start::date - 29 and $end and {where}
        ),
        days as (select distinct day from activity where day between $start and $end)
        select days.day,
               count(distinct activity.user_key) filter (where activity.day = days.day) as dau,
               count(distinct activity.user_key) filter (where activity.day > days.day - 7) as wau,
               count(distinct activity.user_key) as mau,
               dau / mau as stickiness
        from days join activity on activity.day <= days.day and activity.day > days.day - 30
        group by days.day order by days.day
    """, {**params, "start": f.start, "end": f.end})


def retention_cohorts(con: Connection, f: Filters) -> pl.DataFrame:
    """Week-N retention per cohort week (cohorts first seen in a week touching the window)."""
    where, params = _where("mart_retention_weekly", f, None)
    return _frame(con, f"""
        select cohort_week, week_number, sum(cohort_users) as cohort_users, sum(active_users) as active_users,
               sum(active_users) / sum(cohort_users) as retention
        from mart_retention_weekly
        where cohort_week between date_trunc('week', $start::date) and $end and {where}
        group by all order by cohort_week, week_number
    """, {**params, "start": f.start, "end": f.end})


# --- Release Health ------------------------------------------------------------------------------

def release_health_by_release(con: Connection, f: Filters) -> pl.DataFrame:
    """Per release: sessions, crash-free sessions and users (ratio of sums over days and platforms), and
    adoption on the window's last day with data. The mart's adoption is users over the app's users on a
    platform; its denominator (users / adoption_rate) is rebuilt so platforms add up."""
    where, params = _where("mart_release_health", f, "day")
    return _frame(con, f"""
        with rows as (select * from mart_release_health where {where}),
        last_day as (select app_namespace, max(day) as day from rows group by all),
        adoption as (
            select r.release, sum(r.users) / sum(r.users / r.adoption_rate) as adoption_rate
            from rows r join last_day using (app_namespace, day)
            where r.adoption_rate > 0 group by all
        )
        select r.app_namespace, r.release, any_value(r.app_version) as app_version,
               sum(r.sessions) as sessions, sum(r.crashed_sessions) as crashed_sessions,
               1 - sum(r.crashed_sessions) / sum(r.sessions) as crash_free_sessions_rate,
               sum(r.users) as user_days,
               1 - sum(r.crashed_users) / sum(r.users) as crash_free_users_rate,
               coalesce(any_value(a.adoption_rate), 0) as adoption_rate,
               min(r.day) as first_day
        from rows r left join adoption a using (release)
        group by r.app_namespace, r.release order by r.app_namespace, first_day, r.release
    """, params)


def release_adoption_daily(con: Connection, f: Filters) -> pl.DataFrame:
    """Each release's share of its app's users per day (platforms added up as above)."""
    where, params = _where("mart_release_health", f, "day")
    return _frame(con, f"""
        select day, app_namespace, release, sum(users) / sum(users / adoption_rate) as adoption_rate
        from mart_release_health where {where} and adoption_rate > 0
        group by all order by day, release
    """, params)


def crash_groups(con: Connection, f: Filters, limit: int = 50) -> pl.DataFrame:
    """Crash groups seen in the window, most events first (counts are the groups' lifetime totals)."""
    where, params = _where("mart_crash_groups", f, None)
    return _frame(con, f"""
        select app_namespace, group_id, exception_type, exception_value, crash_frame, events, users_affected,
               releases_affected, first_release, last_release, first_seen_at, last_seen_at,
               new_in_latest_release, regressed
        from mart_crash_groups
        where cast(last_seen_at as date) >= $start and cast(first_seen_at as date) <= $end and {where}
        order by events desc, group_id limit $limit
    """, {**params, "start": f.start, "end": f.end, "limit": limit})


def release_gate(con: Connection, f: Filters) -> pl.DataFrame:
    """The release gate's decision and evidence for each rollout (the serving table as the backend reads
    it), halts and rollbacks first."""
    where, params = _where("release_gate", f, None)
    return _frame(con, f"""
        select * from release_gate where {where}
        order by case decision when 'rollback' then 0 when 'halt' then 1 when 'wait' then 2 else 3 end,
                 app_namespace, platform
    """, params)


def release_example_traces(con: Connection, f: Filters | None, release: str, platform: str, route: str,
                           method: str, which: str = "slowest", limit: int = 3) -> pl.DataFrame:
    """Traces of a release's slowest (or failing) requests of one route on one platform, over the release's
    life (the gate's evidence, so the date filter does not apply). A request's release is its session's."""
    keep, order = EXAMPLE_TRACES[which]
    return _frame(con, f"""
        select r.trace_id, r.started_at, r.method, r.route, r.status_code, r.duration_ms, r.is_error,
               r.app_version, r.platform
        from fct_api_requests r join fct_sessions s using (session_id)
        where s.release = $release and s.platform is not distinct from $platform
          and r.route = $route and r.method = $method and {keep}
        order by {order}, r.trace_id
        limit $limit
    """, {"release": release, "platform": platform, "route": route, "method": method, "limit": limit})


# --- API Latency ---------------------------------------------------------------------------------

def latency_daily(con: Connection, f: Filters) -> pl.DataFrame:
    """p50/p95/p99 of request duration per route and day (exact, from the requests under the mart)."""
    where, params = _where("fct_api_requests", f, "day")
    return _frame(con, f"""
        select day, route, count(*) as requests,
               quantile_cont(duration_ms, [0.5, 0.95, 0.99]) as q
        from fct_api_requests where {where} group by all
    """, params).select(
        "day", "route", "requests",
        pl.col("q").list.get(0).alias("p50_ms"), pl.col("q").list.get(1).alias("p95_ms"),
        pl.col("q").list.get(2).alias("p99_ms"),
    ).sort("day", "route")


def slowest_routes(con: Connection, f: Filters, limit: int = 20) -> pl.DataFrame:
    """Routes by p95 over the window, with their requests and errors (from the requests under the mart)."""
    where, params = _where("fct_api_requests", f, "day")
    return _frame(con, f"""
        with by_route as (
            select route, method, count(*) as requests, count_if(is_error) as errors,
                   count_if(is_error) / count(*) as error_rate,
                   quantile_cont(duration_ms, [0.5, 0.95, 0.99]) as q
            from fct_api_requests where {where} group by all
        )
        select route, method, requests, errors, error_rate, q[1] as p50_ms, q[2] as p95_ms, q[3] as p99_ms
        from by_route
        order by p95_ms desc nulls last, route limit $limit
    """, {**params, "limit": limit})


def client_vs_server(con: Connection, f: Filters) -> pl.DataFrame:
    """Per route, over requests whose server span is in the trace: mean server time and mean network +
    device overhead (the mart's means weighted back into sums by their request counts)."""
    where, params = _where("mart_api_latency_daily", f, "day")
    return _frame(con, f"""
        select route, sum(requests_with_server_span) as requests_with_server_span,
               sum(mean_server_ms * requests_with_server_span) / sum(requests_with_server_span) as server_ms,
               sum(mean_overhead_ms * requests_with_server_span) / sum(requests_with_server_span) as overhead_ms,
               sum(mean_client_ms_with_server_span * requests_with_server_span)
                   / sum(requests_with_server_span) as client_ms
        from mart_api_latency_daily where {where} and requests_with_server_span > 0
        group by route order by client_ms desc
    """, params)


# Example traces behind a route's numbers: the slowest requests, or the failing ones (newest first).
EXAMPLE_TRACES = {"slowest": ("true", "r.duration_ms desc"), "failing": ("r.is_error", "r.started_at desc")}


def route_example_traces(con: Connection, f: Filters, route: str, method: str, which: str = "slowest",
                         limit: int = 5) -> pl.DataFrame:
    """Traces of a route's slowest (or failing) requests under the filters: what the API Latency page links
    to the Trace Explorer."""
    keep, order = EXAMPLE_TRACES[which]  # KeyError for anything not offered
    where, params = _where("fct_api_requests", f, "day")
    return _frame(con, f"""
        select r.trace_id, r.started_at, r.method, r.route, r.status_code, r.duration_ms, r.is_error,
               r.app_version, r.platform
        from fct_api_requests r
        where r.route = $route and r.method = $method and {keep} and {where}
        order by {order}, r.trace_id limit $limit
    """, {**params, "route": route, "method": method, "limit": limit})


# --- Feedback ------------------------------------------------------------------------------------

def nps_weekly(con: Connection, f: Filters) -> pl.DataFrame:
    """NPS per week: 100 × (promoters − detractors) / responses over the selected groups."""
    where, params = _where("mart_nps_weekly", f, None)
    return _frame(con, f"""
        select week_start, sum(responses) as responses, sum(promoters) as promoters, sum(passives) as passives,
               sum(detractors) as detractors, 100 * (sum(promoters) - sum(detractors)) / sum(responses) as nps
        from mart_nps_weekly where week_start between date_trunc('week', $start::date) and $end and {where}
        group by week_start order by week_start
    """, {**params, "start": f.start, "end": f.end})


def csat_by_job_type(con: Connection, f: Filters) -> pl.DataFrame:
    where, params = _where("mart_csat_daily", f, "day")
    return _frame(con, f"""
        select coalesce(job_type, '(unknown)') as job_type, sum(responses) as responses,
               sum(satisfied) / sum(responses) as csat_rate, sum(score_sum) / sum(responses) as mean_score
        from mart_csat_daily where {where} group by all order by csat_rate, job_type
    """, params)


def csat_by_technician(con: Connection, f: Filters) -> pl.DataFrame:
    where, params = _where("mart_csat_daily", f, "day")
    return _frame(con, f"""
        select technician_id, sum(responses) as responses, sum(satisfied) / sum(responses) as csat_rate,
               sum(score_sum) / sum(responses) as mean_score
        from mart_csat_daily where {where} group by all order by csat_rate, responses desc, technician_id
    """, params)


def csat_daily(con: Connection, f: Filters) -> pl.DataFrame:
    where, params = _where("mart_csat_daily", f, "day")
    return _frame(con, f"""
        select day, sum(responses) as responses, sum(satisfied) / sum(responses) as csat_rate
        from mart_csat_daily where {where} group by day order by day
    """, params)


def feature_request_topics(con: Connection, f: Filters) -> pl.DataFrame:
    where, params = _where("mart_feature_requests", f, None)
    return _frame(con, f"""
        select week_start, topic, sum(requests) as requests, sum(users) as users,
               any_value(example_text) as example_text
        from mart_feature_requests where week_start between date_trunc('week', $start::date) and $end and {where}
        group by all order by week_start, requests desc, topic
    """, {**params, "start": f.start, "end": f.end})


def review_prompt_summary(con: Connection, f: Filters) -> pl.DataFrame:
    """Users the backend would prompt for a store review now, and why the others are not."""
    where, params = _where("review_prompt_eligibility", f, None)
    return _frame(con, f"""
        select coalesce(ineligible_reason, 'eligible') as status, count(*) as users
        from review_prompt_eligibility where {where} group by all order by users desc
    """, params)


# --- Experiments ---------------------------------------------------------------------------------
# The marts hold finished statistics (lifts, intervals, p-values computed in orchestration/experiments):
# nothing here recomputes or combines them, and the global filters do not apply (``f`` is unused).

# Ratio metrics whose values all lie in [0, 1] are rates, shown as percentages; the others (NPS points per
# response, revenue per user) are shown as numbers.
_RATES = """
    select metric, coalesce(bool_and(least(control_mean, treatment_mean) >= 0
                                     and greatest(control_mean, treatment_mean) <= 1), false) as is_rate
    from mart_experiment_results where metric_type = 'ratio' group by metric
"""


def experiment_list(con: Connection, f: Filters | None = None) -> pl.DataFrame:
    """One row per experiment × treatment variation: status, planned dates, users per arm, the primary
    metric's verdict with the interval and p-value it was read from (decision_*), the SRM flag, the
    guardrails that regressed and the metrics with a zero-variance arm.
    Running experiments first, then finished ones, most recent start first."""
    return _frame(con, f"""
        with rates as ({_RATES}),
        by_variation as (
            select experiment_key, variation_id, any_value(experiment_name) as experiment_name,
                   any_value(variation_name) as variation_name, any_value(feature_key) as feature_key,
                   any_value(status) as status, any_value(planned_start_date) as planned_start_date,
                   any_value(planned_end_date) as planned_end_date, any_value(data_through) as data_through,
                   any_value(hypothesis) as hypothesis, any_value(primary_metric) as primary_metric,
                   max(control_users) as control_users, max(treatment_users) as treatment_users,
                   any_value(srm_chi2) as srm_chi2, any_value(srm_p_value) as srm_p_value,
                   coalesce(bool_or(srm_flag), false) as srm_flag,
                   coalesce(bool_or(guardrail_regressed), false) as guardrail_regressed,
                   coalesce(bool_or(zero_variance_flag), false) as zero_variance_flag,
                   string_agg(metric_label, ', ' order by metric_label)
                       filter (where zero_variance_flag) as zero_variance_metrics,
                   string_agg(metric_label, ', ' order by metric_label)
                       filter (where guardrail_regressed) as regressed_guardrails
            from mart_experiment_results group by experiment_key, variation_id
        )
        select v.*, coalesce(p.metric_label, v.primary_metric) as primary_metric_label,
               coalesce(r.is_rate, false) as primary_is_rate, p.control_mean, p.treatment_mean,
               p.relative_lift, p.relative_ci_low, p.relative_ci_high, p.p_value,
               p.decision_basis, p.decision_lift, p.decision_ci_low, p.decision_ci_high, p.decision_p_value,
               coalesce(p.verdict, 'no result: no primary metric') as verdict,
               coalesce(p.significantly_better, false) as significantly_better,
               coalesce(p.significantly_worse, false) as significantly_worse, p.error
        from by_variation v
        left join mart_experiment_results p
            on p.experiment_key = v.experiment_key and p.variation_id = v.variation_id and p.is_primary
        left join rates r on r.metric = p.metric
        order by case v.status when 'running' then 0 when 'finished' then 1 else 2 end,
                 v.planned_start_date desc, v.experiment_name, v.experiment_key, v.variation_id
    """)


def experiment_metrics(con: Connection, f: Filters | None, experiment_key: str) -> pl.DataFrame:
    """Every metric of one experiment and treatment variation: means, relative lift, its 95 % interval,
    p-values, CUPED where computed (with the variance it removed), and the mart's verdict with the interval
    and p-value it was read from (decision_*); the primary metric first, then the guardrails."""
    return _frame(con, f"""
        with rates as ({_RATES})
        select m.variation_id, m.variation_name, m.metric, m.metric_label, m.metric_type, m.higher_is_better,
               m.is_primary, m.is_guardrail, coalesce(r.is_rate, false) as is_rate,
               m.control_users, m.treatment_users, m.control_mean, m.treatment_mean,
               m.absolute_lift, m.absolute_ci_low, m.absolute_ci_high,
               m.relative_lift, m.relative_ci_low, m.relative_ci_high, m.p_value, m.relative_p_value,
               m.cuped_relative_lift, m.cuped_relative_ci_low, m.cuped_relative_ci_high, m.cuped_p_value,
               m.cuped_variance_reduction, m.decision_basis, m.decision_lift, m.decision_ci_low,
               m.decision_ci_high, m.decision_p_value, m.verdict, m.zero_variance_flag, m.zero_variance_arm,
               m.significantly_better, m.significantly_worse, m.guardrail_regressed, m.error
        from mart_experiment_results m left join rates r using (metric)
        where m.experiment_key = $experiment_key
        order by m.variation_id, case when m.is_primary then 0 when m.is_guardrail then 1 else 2 end,
                 m.metric_label, m.metric
    """, {"experiment_key": experiment_key})


def experiment_arms(con: Connection, f: Filters | None, experiment_key: str) -> pl.DataFrame:
    """Users per variation (control and treatments) against the split the experiment's weights expect:
    what the sample-ratio-mismatch test compares."""
    return _frame(con, """
        with arms as (
            select control_variation_id as variation_id, max(control_users) as users
            from mart_experiment_results where experiment_key = $experiment_key group by all
            union all
            select variation_id, max(treatment_users)
            from mart_experiment_results where experiment_key = $experiment_key group by all
        )
        select a.variation_id, coalesce(d.variation_name, a.variation_id) as variation_name,
               coalesce(d.is_control, false) as is_control, a.users, a.users / sum(a.users) over () as share,
               d.weight / sum(d.weight) over () as expected_share
        from arms a left join experiment_definitions d
            on d.experiment_key = $experiment_key and d.variation_id = a.variation_id
        order by d.variation_index nulls last, a.variation_id
    """, {"experiment_key": experiment_key})


def experiment_daily(con: Connection, f: Filters | None, experiment_key: str) -> pl.DataFrame:
    """The primary metric's lift and 95 % interval cumulated to each day, per treatment variation."""
    return _frame(con, """
        with names as (
            select distinct variation_id, variation_name, metric, metric_label
            from mart_experiment_results where experiment_key = $experiment_key
        )
        select d.day, d.variation_id, coalesce(n.variation_name, d.variation_id) as variation_name, d.metric,
               n.metric_label, d.control_users, d.treatment_users, d.control_mean, d.treatment_mean,
               d.relative_lift, d.relative_ci_low, d.relative_ci_high, d.p_value
        from mart_experiment_daily d left join names n using (variation_id, metric)
        where d.experiment_key = $experiment_key
        order by d.variation_id, d.day
    """, {"experiment_key": experiment_key})


# --- Trace Explorer ------------------------------------------------------------------------------
# Spans come from stg_spans, one trace at a time, or the traces of one session, device or user.

# What a span is, for the waterfall's colours: a database call (db.system), a server span, the app's own
# spans (a mobile resource has an app version), an HTTP call our backend makes to someone else (a partner
# API: a backend CLIENT span that is not a database), messaging, or the backend's internal work.
SPAN_CATEGORY = """
    case when db_system is not null then 'database'
         when kind = 'server' then 'server'
         when app_version is not null then 'app'
         when kind = 'client' then 'partner call'
         when kind in ('producer', 'consumer') then 'messaging'
         else 'internal' end
"""
SPAN_CATEGORIES = ("app", "server", "database", "partner call", "messaging", "internal")

# How each lookup finds its traces: a trace belongs to a session, device or user when one of its spans
# carries that session or device (the app's spans do; the backend's do not). Users own sessions
# (fct_sessions), so a user's traces are those of their sessions.
TRACE_LOOKUPS = {
    "session_id": "session_id = $value",
    "device_id": "device_id = $value",
    "user_id": "session_id in (select session_id from fct_sessions where user_id = $value)",
}


def normalize_trace_id(value: str) -> str:
    """Trace ids are stored as 32 lowercase hex digits: accept one pasted with spaces or in upper case."""
    return value.strip().lower()


def trace_spans(con: Connection, f: Filters | None, trace_id: str) -> pl.DataFrame:
    """Every span of one trace (any date: an id is specific), with its category; no rows for an unknown id."""
    return _frame(con, f"""
        select span_id, parent_span_id, service_name, span_name, kind, {SPAN_CATEGORY} as category,
               started_at, coalesce(ended_at, started_at + to_microseconds(cast(duration_ms * 1000 as bigint)))
                   as ended_at,
               duration_ms, is_error, status_code, status_message, http_method, http_route, http_status_code,
               server_address, db_system, db_operation, app_version, platform, session_id, device_id
        from stg_spans where trace_id = $trace_id order by started_at, span_id
    """, {"trace_id": normalize_trace_id(trace_id)})


def trace_context(con: Connection, f: Filters | None, trace_id: str) -> pl.DataFrame:
    """Who made a trace: its session's app, release and user (fct_sessions), when the trace has a session."""
    return _frame(con, """
        with session as (
            select any_value(session_id) as session_id from stg_spans
            where trace_id = $trace_id and session_id is not null
        )
        select s.session_id, s.user_id, s.app_namespace, s.release, s.platform, s.device_id
        from fct_sessions s join session using (session_id)
    """, {"trace_id": normalize_trace_id(trace_id)})


def traces_lookup(con: Connection, f: Filters, by: str, value: str, limit: int = 200) -> pl.DataFrame:
    """The traces of one session, device or user that started in the date range, newest first: one row per
    trace with its root span, the app request's route, duration, spans and errors."""
    predicate = TRACE_LOOKUPS[by]  # KeyError for anything not offered
    return _frame(con, f"""
        with matched as (
            select distinct trace_id from stg_spans
            where {predicate} and cast(started_at as date) between $start and $end
        )
        select s.trace_id, min(s.started_at) as started_at,
               coalesce(min_by(s.span_name, s.started_at) filter (where s.parent_span_id is null),
                        min_by(s.span_name, s.started_at)) as root_span,
               max(s.http_route) filter (where s.kind = 'client' and s.app_version is not null) as route,
               max(s.app_version) as app_version, max(s.platform) as platform,
               max(s.session_id) as session_id, max(s.device_id) as device_id,
               date_diff('microsecond', min(s.started_at), max(s.ended_at)) / 1000 as duration_ms,
               count(*) as spans, count_if(s.is_error) as errors
        from stg_spans s join matched using (trace_id)
        group by s.trace_id order by started_at desc, s.trace_id limit $limit
    """, {"value": value.strip(), "start": f.start, "end": f.end, "limit": limit})


def slowest_trace_id(con: Connection, f: Filters) -> str | None:
    """The trace of the slowest request under the filters (what a benchmark opens in the Trace Explorer)."""
    where, params = _where("fct_api_requests", f, "day")
    rows = con.execute(f"select trace_id from fct_api_requests where {where} order by duration_ms desc, trace_id "
                       "limit 1", params).fetchall()
    return rows[0][0] if rows else None


# --- what each page runs -------------------------------------------------------------------------


# --- Partners ------------------------------------------------------------------------------------
# SLAs and breaches by day, reconciliation breaks (open ones whatever their date: open is open), and the
# booking funnel of the partner widgets. Only the date range applies.

_BREACHED_LIST = "list_sort(list_distinct(flatten(list(string_split(replace(breached_slas, ' ', ''), ',')))))"


def partner_sla_summary(con: Connection, f: Filters) -> pl.DataFrame:
    """One row per partner over the range: days judged and breached, the SLAs it missed, the latest day."""
    return _frame(con, f"""
        select partner, count(*) filter (where slas_judged > 0) as days_judged,
               count(*) filter (where not sla_met) as days_breached,
               array_to_string(list_filter({_BREACHED_LIST}, lambda x: x <> ''), ', ') as breached_slas,
               max(day) as latest_day, arg_max(sla_met, day) as latest_sla_met,
               sum(volume_records) as records, max(freshness_observed) as worst_freshness,
               any_value(freshness_unit) as freshness_unit, max(latency_observed) as worst_latency,
               any_value(latency_unit) as latency_unit, min(availability_observed) as worst_availability
        from mart_partner_sla_daily where day between $start and $end
        group by partner order by partner
    """, {"start": f.start, "end": f.end})


def partner_sla_days(con: Connection, f: Filters) -> pl.DataFrame:
    """Partner × day: met, breached (with which SLAs) or not judged (no SLA could be judged that day)."""
    return _frame(con, """
        select partner, day,
               case when slas_judged = 0 then 'not judged' when sla_met then 'met' else 'breached' end as status,
               coalesce(breached_slas, '') as breached_slas, volume_records, volume_expected_min,
               volume_expected_max
        from mart_partner_sla_daily where day between $start and $end order by partner, day
    """, {"start": f.start, "end": f.end})


def partner_contract_breaches(con: Connection, f: Filters) -> pl.DataFrame:
    """Every contract breach (schema or SLA) of the range, newest first."""
    return _frame(con, """
        select day, partner, dataset, breach_kind, rule, observed, threshold, records, detail, first_detected_at
        from partner_contract_breaches where day between $start and $end
        order by day desc, partner, dataset, rule
    """, {"start": f.start, "end": f.end})


AGE_BUCKETS = ("0–1 days", "2–7 days", "8–30 days", "over 30 days")


def reconciliation_open_breaks(con: Connection, f: Filters | None = None) -> pl.DataFrame:
    """Open breaks by partner, class and age bucket, with the amount at stake."""
    return _frame(con, f"""
        select partner, break_class,
               case when age_days <= 1 then '{AGE_BUCKETS[0]}' when age_days <= 7 then '{AGE_BUCKETS[1]}'
                    when age_days <= 30 then '{AGE_BUCKETS[2]}' else '{AGE_BUCKETS[3]}' end as age,
               count(*) as breaks, sum(amount_at_stake) as amount_at_stake
        from mart_reconciliation_breaks where status = 'open' group by all order by partner, break_class, age
    """)


def reconciliation_breaks(con: Connection, f: Filters) -> pl.DataFrame:
    """The open breaks, oldest first, then those resolved in the range."""
    return _frame(con, """
        select status, partner, break_class, record_id, partner_txn_id, internal_id, break_date, age_days,
               partner_amount, internal_amount, amount_at_stake, detail, first_seen_at, resolved_at, times_reopened
        from mart_reconciliation_breaks
        where status = 'open' or cast(resolved_at as date) between $start and $end
        order by status = 'resolved', age_days desc, partner, break_class, record_id
    """, {"start": f.start, "end": f.end})


PARTNER_FUNNEL_STEPS = (("widget_sessions_opened", "widget opened"), ("slots_chosen", "slot chosen"),
                        ("bookings_created", "booking created"), ("confirmed_by_partner", "confirmed by partner"),
                        ("visits_completed", "visit completed"))


def partner_booking_funnel(con: Connection, f: Filters) -> pl.DataFrame:
    """Each partner widget's funnel over the range, split into first bookings and follow-up visits."""
    steps = ", ".join(f"sum({column}) as {column}" for column, _ in PARTNER_FUNNEL_STEPS)
    return _frame(con, f"""
        select partner_id, is_follow_up, {steps}
        from mart_partner_booking_funnel where day between $start and $end
        group by all order by partner_id, is_follow_up
    """, {"start": f.start, "end": f.end})


Query = Callable[[Connection, Filters], pl.DataFrame]


def _first_funnel(query):
    """A funnel query with the first funnel and no breakdown: what the Funnels page shows by default."""
    def run(con: Connection, f: Filters) -> pl.DataFrame:
        return query(con, f, funnel_definitions(con).item(0, "funnel"))
    run.__name__ = query.__name__
    return run


def _slowest_trace(query):
    """A trace query on the slowest request's trace: what the Trace Explorer shows when a link opens it."""
    def run(con: Connection, f: Filters) -> pl.DataFrame:
        return query(con, f, slowest_trace_id(con, f) or "")
    run.__name__ = query.__name__
    return run


# --- Recommendations ---------------------------------------------------------------------------------
# The serving table is tomorrow's (built by the last run); the model runs and efficacy are history.

def recommendation_policy_mix(con: Connection, f: Filters | None = None) -> pl.DataFrame:
    """Rows of the serving table by placement and policy (model, explore, rules_fallback), with users."""
    return _frame(con, """
        select placement, policy, count(*) as rows, count(distinct user_id) as users,
               any_value(model_version) as model_version, max(generated_at) as generated_at,
               max(valid_until) as valid_until
        from recommendations group by all order by placement, rows desc
    """)


def recommendation_top_actions(con: Connection, f: Filters | None = None) -> pl.DataFrame:
    """What customers will see first: the rank-1 action per placement, by how many customers get it."""
    return _frame(con, """
        select placement, action_id, count(*) as customers,
               count(*) / sum(count(*)) over (partition by placement) as share
        from recommendations where rank = 1 group by placement, action_id order by placement, customers desc, action_id
    """)


def recommendation_model_runs(con: Connection, f: Filters | None = None) -> pl.DataFrame:
    """Every training attempt of pitwall-nba, newest first: trained or why not, the version and the alias the
    gate gave it, its reasons, and the holdout AUC and NDCG@3 of the model and both baselines."""
    return _frame(con, "select * from nba_model_runs order by trained_at desc, run_id")


def recommendation_efficacy(con: Connection, f: Filters) -> pl.DataFrame:
    """Shown, clicked and accepted recommendations by policy and placement over the weeks touching the window
    (ratio of sums: the rates are recomputed from the counts, never averaged)."""
    return _frame(con, """
        select policy, placement, sum(shown) as shown, sum(clicked) as clicked, sum(accepted) as accepted,
               sum(clicked) / nullif(sum(shown), 0) as click_rate,
               sum(accepted) / nullif(sum(shown), 0) as acceptance_rate,
               sum(revenue) as revenue
        from mart_recommendation_efficacy
        where week_start between date_trunc('week', $start::date) and $end
        group by all order by placement, policy
    """, {"start": f.start, "end": f.end})


def recommendation_ips(con: Connection, f: Filters | None = None) -> pl.DataFrame:
    """Off-policy estimates of each action's acceptance rate from the explore traffic (IPS and self-normalised
    IPS, with their 95 % intervals), over the whole logged history."""
    return _frame(con, """
        select action_id, exploration_exposures, shown, accepted, effective_sample_size,
               ips_acceptance, ips_ci_low, ips_ci_high, snips_acceptance, snips_ci_low, snips_ci_high
        from mart_recommendation_efficacy_ips where period = 'all'
        order by snips_acceptance desc nulls last, action_id
    """)


def user_recommendations(con: Connection, f: Filters | None, user_id: str) -> pl.DataFrame:
    """One customer's recommendations, by placement and rank, with the reasons the app shows."""
    return _frame(con, """
        select placement, rank, action_id, vin, policy, score, array_to_string(reason_codes, ' · ') as reasons,
               model_version
        from recommendations where user_id = $user_id order by placement, rank
    """, {"user_id": user_id})


def first_recommended_user(con: Connection, f: Filters | None = None) -> pl.DataFrame:
    """The first customer of the serving table (by id): whom the Recommendations page shows until asked."""
    return _frame(con, "select min(user_id) as user_id from recommendations having count(*) > 0")


def _first_user(query):
    """A user query with the first customer of the serving table: what the Recommendations page shows first."""
    def run(con: Connection, f: Filters) -> pl.DataFrame:
        first = first_recommended_user(con, f)
        return query(con, f, first.item(0, "user_id") if first.height else "")
    run.__name__ = query.__name__
    return run


def _slowest_route_examples(con: Connection, f: Filters) -> pl.DataFrame:
    """The example traces the API Latency page links for its slowest route."""
    top = slowest_routes(con, f, limit=1)
    return route_example_traces(con, f, top.item(0, "route"), top.item(0, "method")) if top.height else top


_slowest_route_examples.__name__ = "route_example_traces"


def _first_experiment(query):
    """An experiment query with the first experiment of the list: what the Experiments page shows by default."""
    def run(con: Connection, f: Filters) -> pl.DataFrame:
        return query(con, f, experiment_list(con, f).item(0, "experiment_key"))
    run.__name__ = query.__name__
    return run


PAGE_QUERIES: dict[str, list[Query]] = {
    "overview": [overview_crash_free, overview_latency, overview_funnels, overview_nps, overview_daily_health],
    "funnels": [_first_funnel(funnel_steps), _first_funnel(funnel_trend), _first_funnel(funnel_time_to_convert)],
    "engagement": [engagement_daily, retention_cohorts],
    "release_health": [release_health_by_release, release_adoption_daily, crash_groups, release_gate],
    "api_latency": [latency_daily, slowest_routes, client_vs_server, _slowest_route_examples],
    "trace_explorer": [_slowest_trace(trace_spans), _slowest_trace(trace_context)],
    "feedback": [nps_weekly, csat_daily, csat_by_job_type, csat_by_technician, feature_request_topics,
                 review_prompt_summary],
    "experiments": [experiment_list, _first_experiment(experiment_metrics), _first_experiment(experiment_arms),
                    _first_experiment(experiment_daily)],
    "partners": [partner_sla_summary, partner_sla_days, partner_contract_breaches, reconciliation_open_breaks,
                 reconciliation_breaks, partner_booking_funnel],
    "recommendations": [recommendation_policy_mix, recommendation_top_actions, recommendation_model_runs,
                        recommendation_efficacy, recommendation_ips, _first_user(user_recommendations)],
}
# Tables each page needs; a missing one means the pipeline has not built it yet.
PAGE_TABLES: dict[str, list[str]] = {
    "overview": ["mart_release_health", "fct_api_requests", "mart_funnel_daily", "funnel_steps", "mart_nps_weekly"],
    "funnels": ["funnels", "funnel_steps", "mart_funnel_daily", "int_funnel_entries", "int_funnel_entry_steps"],
    "engagement": ["int_user_activity_daily", "mart_retention_weekly"],
    "release_health": ["mart_release_health", "mart_crash_groups"],
    "api_latency": ["fct_api_requests", "mart_api_latency_daily"],
    "trace_explorer": ["stg_spans", "fct_sessions", "fct_api_requests"],
    "feedback": ["mart_nps_weekly", "mart_csat_daily", "mart_feature_requests", "review_prompt_eligibility"],
    "experiments": ["mart_experiment_results", "mart_experiment_daily", "experiment_definitions"],
    "partners": ["mart_partner_sla_daily", "partner_contract_breaches", "mart_reconciliation_breaks",
                 "mart_partner_booking_funnel"],
    "recommendations": ["recommendations", "nba_model_runs", "mart_recommendation_efficacy",
                        "mart_recommendation_efficacy_ips"],
}
