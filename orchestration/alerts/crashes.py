"""Crash alert rules over the raw layer, near real time.

The rules (crash_spike, new_crash_group, crash_group_regression, crash_free_sessions; parameters in rules.yaml)
read the raw crashes Parquet (and the raw events for session counts) with set-based DuckDB SQL, never the
warehouse: a daily dbt build holds the warehouse's single writer lock, and an alert must not wait for it.

Time is the data's own: "now" is the newest crash's arrival (Sentry's ``received``, else its ``timestamp``), not
the wall clock, so the rules give the same answers live, on simulated data and on a replay. An evaluation looks
at every tick (each ``step_minutes`` boundary, and now itself) since the previous evaluation's now, as a live
evaluator running every few minutes would have; a tick sees only crashes that had arrived by then. The result
is the set of (tick, rule, subject) where a rule holds; walking the ticks in order raises an alert where it
holds and resolves it at the first tick where it no longer does (cooldown and messages: store.py).

A crash's group is stg_crashes' grouping key, rendered from the one definition in
dbt_project/macros/crash_grouping.sql.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

import jinja2

from orchestration.ingestion import ledger
from orchestration.ingestion.ingest import SourceSummary, discover, ingest_source
from orchestration.ingestion.sources import SOURCES
from pitwall import paths
from pitwall.duck import connect

from .delivery import DeliveryReport, deliver_pending
from .store import alert_store, config, raise_alert_in, resolve_alert_in

log = logging.getLogger(__name__)

RULES = ("crash_spike", "new_crash_group", "crash_group_regression", "crash_free_sessions")
GROUPING_MACROS = paths.DBT_PROJECT_DIR / "macros" / "crash_grouping.sql"
# Partitions of real data (the raw layer keeps a zero-row schema file under dt=1970-01-01).
DATA_PARTITIONS = "dt > DATE '1970-01-01'"

STATE_DDL = """
create table if not exists crash_rules_state (
    singleton boolean primary key default true,  -- one row
    evaluated_until timestamptz not null,         -- the data time of the last tick evaluated
    updated_at timestamptz not null
)"""


def rule_params(rule: str) -> dict[str, Any]:
    return dict(config()["rules"][rule])


def step() -> timedelta:
    return timedelta(minutes=float(config()["crash_rules"]["step_minutes"]))


@lru_cache(maxsize=1)
def grouping_key_sql() -> str:
    """stg_crashes' grouping key over the raw crash columns, from the macros dbt uses (DuckDB's list functions)."""
    macros = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(GROUPING_MACROS.read_text()).module
    default_key = str(macros.crash_default_grouping_key())
    return str(macros.crash_grouping_key("len(fingerprint)", "array_to_string(fingerprint, '|')", f"({default_key})"))


def crashes_sql() -> str:
    """Raw crashes, one row per event (the first delivery of an event id, as stg_crashes keeps), with their group,
    release, app and arrival time."""
    glob = (paths.raw_dir() / "crashes" / "dt=*" / "*.parquet").as_posix().replace("'", "''")
    return f"""
        select
            event_id,
            release,
            split_part(release, '@', 1) as app_id,
            {grouping_key_sql()} as group_key,
            coalesce(received_at, occurred_at) as arrived_at,
            json_extract_string(tags, '$."session_id"') as session_id
        from read_parquet('{glob}', hive_partitioning = true, union_by_name = true)
        where {DATA_PARTITIONS} and release like '%@%' and coalesce(received_at, occurred_at) is not null
        qualify row_number() over (partition by event_id order by dt, _landing_path, _line_no) = 1"""


def sessions_sql() -> str | None:
    """SDK sessions from the raw events (Segment ``context.sessionId``), with the Sentry-style release the
    warehouse gives them (fct_sessions) and when each was first seen; None before any events were ingested.
    Events without an SDK session id are left to the daily release-health mart, which infers their sessions."""
    root = paths.raw_dir() / "events"
    if not any(root.glob("dt=*/*.parquet")):
        return None
    glob = (root / "dt=*" / "*.parquet").as_posix().replace("'", "''")
    return f"""
        select
            context_session_id as session_id,
            arg_min(context_app_namespace || '@' || context_app_version || '+' || context_app_build, received_at)
                as release,
            min(received_at) as arrived_at
        from read_parquet('{glob}', hive_partitioning = true, union_by_name = true)
        where {DATA_PARTITIONS} and context_session_id is not null and received_at is not null
          and context_app_namespace is not null
        group by context_session_id"""


NO_SESSIONS = "select null::VARCHAR as session_id, null::VARCHAR as release, null::TIMESTAMPTZ as arrived_at where false"

# A release's version as a sortable value: [major, minor, patch] then the build number.
VERSION_KEY = """[list_transform(string_split(split_part(split_part({r}, '@', 2), '+', 1), '.'),
                                lambda v: coalesce(try_cast(v as integer), 0)),
                 [coalesce(try_cast(split_part({r}, '+', 2) as integer), 0)]]"""

RULE_SQL = {
    # Crashes of a release arrived in the window, against its own rate over the trailing baseline (scaled to the
    # window). The baseline spans at most the time the release has been seen (sessions or crashes), so a young
    # release is judged on its own short history, once it has min_history; min_count keeps a handful of crashes
    # from firing however low the baseline.
    "crash_spike": """
        with release_first as (
            select release, min(arrived_at) as first_at from (
                select release, arrived_at from crashes union all select release, arrived_at from sessions
            ) group by release
        ),
        counted as (
            select t.tick, c.release,
                   count_if(c.arrived_at > t.tick - $window) as recent,
                   count_if(c.arrived_at <= t.tick - $window) as baseline_crashes
            from ticks t
            join crashes c on c.arrived_at > t.tick - $window - $baseline and c.arrived_at <= t.tick
            group by all
        ),
        judged as (
            select counted.*,
                   -- seconds of history the baseline covers: the baseline window, or less for a young release
                   greatest(epoch(t_end) - epoch(greatest(t_end - $baseline, f.first_at)), 0) as baseline_seconds
            from (select *, tick - $window as t_end from counted) counted
            join release_first f using (release)
            -- a release seen for less than min_history has no rate to compare with yet
            where f.first_at <= counted.t_end - $min_history
        ),
        expected as (
            select *,
                   case when baseline_seconds > 0
                        then baseline_crashes * epoch($window) / baseline_seconds else 0 end as expected
            from judged
        ),
        firing as (
            select * from expected where recent >= $min_count and recent > $factor * expected
        ),
        top_group as (
            select f.tick, f.release, c.group_key, count(*) as n
            from firing f
            join crashes c on c.release = f.release and c.arrived_at > f.tick - $window and c.arrived_at <= f.tick
            group by f.tick, f.release, c.group_key
            qualify row_number() over (partition by f.tick, f.release order by n desc, c.group_key) = 1
        )
        select f.tick, f.release as subject, f.release, g.group_key, f.recent::DOUBLE as value,
               greatest($factor * f.expected, $min_count::DOUBLE) as threshold,
               f.tick - $window as window_start, f.tick as window_end,
               json_object('recent_crashes', f.recent, 'baseline_crashes', f.baseline_crashes,
                           'baseline_hours', round(f.baseline_seconds / 3600, 2), 'expected_in_window', f.expected,
                           'factor', $factor, 'min_count', $min_count, 'top_group_crashes', g.n) as details
        from firing f join top_group g using (tick, release)""",

    # A group whose first crash ever came from its app's newest release (the highest version seen by then), while
    # the app had been watched for min_history (at first start every group would look new). It stays new for
    # hold_hours, or until a newer release ships.
    "new_crash_group": """
        with app_start as (
            select app_id, min(arrived_at) as watched_from from crashes group by app_id
        ),
        group_first as (
            select app_id, group_key, min(arrived_at) as first_at, arg_min(release, arrived_at) as first_release,
                   count(*) as crashes_so_far
            from crashes group by app_id, group_key
        ),
        release_first as (
            select app_id, release, min(arrived_at) as first_at from (
                select app_id, release, arrived_at from crashes
                union all
                select split_part(release, '@', 1), release, arrived_at from sessions
            ) group by all
        ),
        newest as (
            select t.tick, r.app_id, arg_max(r.release, {version_key}) as newest_release
            from ticks t join release_first r on r.first_at <= t.tick
            group by all
        )
        select t.tick, g.group_key || ' in ' || g.first_release as subject, g.first_release as release, g.group_key,
               1.0 as value, null::DOUBLE as threshold, g.first_at as window_start, t.tick as window_end,
               json_object('first_seen_at', g.first_at, 'app', g.app_id, 'newest_release', n.newest_release)
                   as details
        from ticks t
        join group_first g on g.first_at <= t.tick and g.first_at > t.tick - $hold
        join app_start a on a.app_id = g.app_id and g.first_at >= a.watched_from + $min_history
        join newest n on n.tick = t.tick and n.app_id = g.app_id and n.newest_release = g.first_release""",

    # A group seen again after absent_days without a crash (Crashlytics calls it regressed); it stays regressed for
    # hold_hours after that crash.
    "crash_group_regression": """
        with gaps as (
            select group_key, release, arrived_at,
                   lag(arrived_at) over (partition by group_key order by arrived_at, event_id) as previous_at
            from crashes
        ),
        returns as (
            select * from gaps where previous_at is not null and arrived_at - previous_at >= $absent
        )
        select t.tick, r.group_key as subject, arg_max(r.release, r.arrived_at) as release, r.group_key,
               max(epoch(r.arrived_at) - epoch(r.previous_at)) / 86400 as value, epoch($absent) / 86400 as threshold,
               max(r.previous_at) as window_start, max(r.arrived_at) as window_end,
               json_object('returned_at', max(r.arrived_at), 'previously_seen_at', max(r.previous_at)) as details
        from ticks t join returns r on r.arrived_at <= t.tick and r.arrived_at > t.tick - $hold
        group by t.tick, r.group_key""",

    # Crash-free sessions of a release over the window: SDK sessions first seen in the window, and crashed sessions
    # among those whose crash report arrived by the tick (a report arrives after its session).
    "crash_free_sessions": """
        with windowed as (
            select t.tick, s.release, count(*) as sessions,
                   count(distinct c.session_id) as crashed_sessions
            from ticks t
            join sessions s on s.arrived_at > t.tick - $window and s.arrived_at <= t.tick
            left join crashes c on c.session_id = s.session_id and c.arrived_at <= t.tick
            group by all
        )
        select tick, release as subject, release, null as group_key,
               1 - crashed_sessions / sessions as value, $threshold::DOUBLE as threshold,
               tick - $window as window_start, tick as window_end,
               json_object('sessions', sessions, 'crashed_sessions', crashed_sessions, 'min_sessions', $min_sessions)
                   as details
        from windowed
        where sessions >= $min_sessions and 1 - crashed_sessions / sessions < $threshold""",
}


def _hours(value: float) -> timedelta:
    return timedelta(hours=float(value))


def _parameters(rule: str) -> dict[str, Any]:
    p = rule_params(rule)
    if rule == "crash_spike":
        return {"window": timedelta(minutes=float(p["window_minutes"])), "baseline": _hours(p["baseline_hours"]),
                "factor": float(p["factor"]), "min_count": int(p["min_count"]),
                "min_history": _hours(p["min_history_hours"])}
    if rule == "new_crash_group":
        return {"hold": _hours(p["hold_hours"]), "min_history": _hours(p["min_history_hours"])}
    if rule == "crash_group_regression":
        return {"absent": timedelta(days=float(p["absent_days"])), "hold": _hours(p["hold_hours"])}
    if rule == "crash_free_sessions":
        return {"window": _hours(p["window_hours"]), "threshold": float(p["threshold"]),
                "min_sessions": int(p["min_sessions"])}
    raise KeyError(rule)


@dataclass(frozen=True)
class Finding:
    """A rule holding for a subject at a tick."""
    rule: str
    tick: datetime
    subject: str
    release: str | None
    group_key: str | None
    value: float | None
    threshold: float | None
    window_start: datetime | None
    window_end: datetime | None
    details: dict


@dataclass
class Evaluation:
    now: datetime | None = None
    ticks: int = 0
    findings: int = 0
    raised: list[str] = field(default_factory=list)     # alert ids that queued a fire message
    resolved: list[str] = field(default_factory=list)   # alert ids resolved (a resolve message queued)
    message: str = ""


def evaluation_ticks(now: datetime, since: datetime | None, earliest: datetime) -> list[datetime]:
    """Every step boundary after ``since`` (from the earliest arrival on a first evaluation) up to now, and now."""
    size = step()
    start = since if since is not None else earliest - size
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    tick = epoch + ((start - epoch) // size + 1) * size
    ticks = []
    while tick < now:
        ticks.append(tick)
        tick += size
    if since is None or now > since:
        ticks.append(now)
    return ticks


def find(con, ticks: list[datetime], rules: tuple[str, ...] = RULES) -> list[Finding]:
    """The (tick, rule, subject) where each rule holds, set-based over all ticks at once."""
    con.execute("create or replace temp table ticks as select unnest($ticks::TIMESTAMPTZ[]) as tick", {"ticks": ticks})
    findings = []
    for rule in rules:
        params = _parameters(rule)
        sql = RULE_SQL[rule].replace("{version_key}", VERSION_KEY.format(r="r.release"))
        used = {k: v for k, v in params.items() if f"${k}" in sql}
        cursor = con.execute(f"select * from ({sql}) order by tick, subject", used)
        for tick, subject, release, group_key, value, threshold, start, end, details in cursor.fetchall():
            findings.append(Finding(rule, tick, subject, release, group_key, value, threshold, start, end,
                                    json.loads(details) if details else {}))
    return findings


def _summary(f: Finding) -> str:
    d = f.details
    if f.rule == "crash_spike":
        return (f"{int(f.value)} crashes of {f.release} in {int((f.window_end - f.window_start).total_seconds() // 60)} "
                f"min (expected {d['expected_in_window']:.2f} from the last {d['baseline_hours']} h; threshold "
                f"{f.threshold:.2f}); top group {f.group_key} ({d['top_group_crashes']})")
    if f.rule == "new_crash_group":
        return f"New crash group {f.group_key} first seen in {f.release}, the newest release of {d['app']}"
    if f.rule == "crash_group_regression":
        return (f"Crash group {f.group_key} is back in {f.release} after {f.value:.1f} days without a crash "
                f"(last seen {d['previously_seen_at']})")
    return (f"Crash-free sessions of {f.release} at {f.value:.2%} under {f.threshold:.0%} "
            f"({d['crashed_sessions']} of {d['sessions']} sessions crashed)")


def _resolution(rule: str, subject: str) -> str:
    return {
        "crash_spike": f"Crashes of {subject} are back under the spike threshold",
        "new_crash_group": f"Crash group {subject} is no longer new",
        "crash_group_regression": f"Crash group {subject}'s regression is past its hold time",
        "crash_free_sessions": f"Crash-free sessions of {subject} are back over the threshold",
    }[rule]


def evaluate_crash_rules(*, rules: tuple[str, ...] = RULES) -> Evaluation:
    """Evaluate the crash rules at every tick since the last evaluation, and raise and resolve their alerts."""
    result = Evaluation()
    if not any((paths.raw_dir() / "crashes").glob("dt=*/*.parquet")):
        result.message = "crash rules: no crashes yet"
        return result
    con = connect()
    try:
        con.execute(f"create temp view crashes as {crashes_sql()}")
        # before any events were ingested the rules see no sessions (crash_free_sessions then finds nothing)
        con.execute(f"create temp view sessions as {sessions_sql() or NO_SESSIONS}")
        earliest, now = con.execute("select min(arrived_at), max(arrived_at) from crashes").fetchall()[0]
        if now is None:
            result.message = "crash rules: no crashes yet"
            return result
        with alert_store() as store:
            store.execute(STATE_DDL)
            rows = store.execute("select evaluated_until from crash_rules_state").fetchall()
        since = rows[0][0] if rows else None
        ticks = evaluation_ticks(now, since, earliest)
        result.now, result.ticks = now, len(ticks)
        if not ticks:
            result.message = f"crash rules: nothing arrived after {since}"
            return result
        findings = find(con, ticks, rules)
    finally:
        con.close()
    result.findings = len(findings)
    _apply(findings, ticks, rules, result)
    result.message = (f"crash rules: {len(ticks)} tick(s) up to {now}; {len(findings)} finding(s); "
                      f"{len(result.raised)} alert message(s), {len(result.resolved)} resolved")
    log.info(result.message)
    return result


def _apply(findings: list[Finding], ticks: list[datetime], rules: tuple[str, ...], result: Evaluation) -> None:
    """Walk the ticks in order: raise where a rule holds, resolve where a firing one no longer does."""
    holding: dict[datetime, dict[tuple[str, str], Finding]] = {}
    for f in findings:
        holding.setdefault(f.tick, {})[(f.rule, f.subject)] = f
    with alert_store() as store:
        store.execute(STATE_DDL)
        firing = {(rule, subject) for rule, subject in store.execute(
            f"select rule, subject from alerts where status = 'firing' and rule in ({', '.join('?' * len(rules))})",
            list(rules)).fetchall()}
        for tick in ticks:
            now_holding = holding.get(tick, {})
            for key in sorted(firing - now_holding.keys()):
                alert_id = resolve_alert_in(store, rule=key[0], subject=key[1], summary=_resolution(*key), now=tick)
                if alert_id:
                    result.resolved.append(alert_id)
            for key, f in sorted(now_holding.items()):
                alert_id = raise_alert_in(store, rule=f.rule, subject=f.subject, summary=_summary(f), value=f.value,
                                          threshold=f.threshold, window_start=f.window_start,
                                          window_end=f.window_end, release=f.release, group_key=f.group_key,
                                          details={**f.details, "evaluated_at": tick.isoformat()}, now=tick)
                if alert_id:
                    result.raised.append(alert_id)
            firing = set(now_holding)
        store.execute("""insert into crash_rules_state values (true, ?, ?)
                         on conflict (singleton) do update set evaluated_until = excluded.evaluated_until,
                             updated_at = excluded.updated_at""", [ticks[-1], datetime.now(UTC)])


def new_landing_files(source: str = "crashes") -> list[str]:
    """Landing files of a source that the ingestion ledger has not seen as they are now (new, or changed since),
    as ``path:size:mtime_ns``: what the crash sensor starts a run for."""
    known = {row["landing_path"]: (row["size_bytes"], row["mtime_ns"]) for row in ledger.read_ledger(source)}
    waiting = []
    for landing_file in discover(SOURCES[source]):
        stat = landing_file.path.stat()
        if known.get(landing_file.relative) != (stat.st_size, stat.st_mtime_ns):
            waiting.append(f"{landing_file.relative}:{stat.st_size}:{stat.st_mtime_ns}")
    return waiting


@dataclass
class CrashAlerting:
    ingested: list[SourceSummary]
    evaluation: Evaluation
    delivery: DeliveryReport


def run_crash_alerting(*, deliver: bool = True) -> CrashAlerting:
    """The near-real-time path: ingest new crash files (and event files, for session counts) into the raw layer,
    evaluate the crash rules, and send the queued messages. Needs no warehouse lock."""
    ingested = [ingest_source("crashes"), ingest_source("events")]
    evaluation = evaluate_crash_rules()
    delivery = deliver_pending() if deliver else DeliveryReport(configured=False, message="delivery skipped")
    return CrashAlerting(ingested, evaluation, delivery)
