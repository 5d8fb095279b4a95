"""Alerts and their delivery outbox, in a DuckDB file of their own (``paths.alerts_path()``).

Not in the warehouse: DuckDB lets one process write a file, and a daily dbt build holds the warehouse for
minutes, while the near-real-time crash rules must record an alert within seconds. Every function here opens
a short-lived connection to the alerts file itself and closes it at once, waiting briefly when another
process holds it (``alert_store``); nobody keeps it open, so producers in different processes (partner loads,
the crash sensor's job, the failed-run sensor, delivery) take turns in milliseconds.

Every producer calls ``raise_alert`` / ``resolve_alert``; the alert and the message to send are written in
one transaction (an outbox), and ``delivery.deliver_pending`` sends the messages later. So an alert is
never lost when the webhook is down or not configured: its delivery waits, visible in
``alert_deliveries``, and is retried on the next delivery run. A producer with many transitions at once
(the crash rules) opens one ``alert_store()`` and calls ``raise_alert_in`` / ``resolve_alert_in`` on it.

Dedupe and cooldown: one firing alert per (rule, subject). While it fires, seeing the condition again only
counts it, and sends again only once the rule's cooldown (rules.yaml) has passed since the last message.
A condition that comes back within the cooldown after a resolve reopens the alert without a message.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import yaml

from pitwall import paths
from pitwall.duck import connect

RULES_FILE = Path(__file__).with_name("rules.yaml")
# Another process holds the alerts file for milliseconds at a time; waiting this long covers a burst of them.
LOCK_WAIT_SECONDS = 30.0
ALERT_TABLES = ("alerts", "alert_deliveries")  # what publishing copies for the dashboards
T = TypeVar("T")

DDL = """
create table if not exists alerts (
    alert_id varchar primary key,
    rule varchar not null,
    subject varchar not null,          -- what the alert is about: a partner dataset, a release, a run
    release varchar,                   -- the app release it concerns (Sentry naming app@version+build), if any
    group_key varchar,                 -- the crash group it concerns (stg_crashes.grouping_key), if any
    severity varchar not null,         -- info | warning | critical
    summary varchar not null,
    details varchar,                   -- JSON object
    value double,
    threshold double,
    window_start timestamptz,
    window_end timestamptz,
    first_fired_at timestamptz not null,
    last_fired_at timestamptz not null,   -- last time the condition was seen
    last_notified_at timestamptz,
    fire_count integer not null,
    status varchar not null,           -- firing | resolved
    resolved_at timestamptz
);
create table if not exists alert_deliveries (
    delivery_id varchar primary key,
    alert_id varchar not null,
    kind varchar not null,             -- fire | resolve
    payload varchar not null,          -- the JSON body sent to the webhook
    status varchar not null,           -- pending | sending | delivered | failed (failed ones are retried next run)
    attempts integer not null,
    last_attempt_at timestamptz,
    last_status_code integer,
    last_error varchar,
    created_at timestamptz not null,
    delivered_at timestamptz
);
-- files created before release and group_key existed
alter table alerts add column if not exists release varchar;
alter table alerts add column if not exists group_key varchar;
-- a sender's claim on a delivery (status 'sending'): no other sender posts it until the claim expires
alter table alert_deliveries add column if not exists claim_token varchar;
alter table alert_deliveries add column if not exists claimed_until timestamptz;
"""


@dataclass(frozen=True)
class Rule:
    name: str
    severity: str
    cooldown: timedelta
    description: str = ""


@lru_cache(maxsize=1)
def config() -> dict:
    return yaml.safe_load(RULES_FILE.read_text())


def rule_config(name: str) -> Rule:
    cfg = config()
    spec = {**cfg["defaults"], **(cfg.get("rules", {}).get(name) or {})}
    return Rule(name, spec["severity"], timedelta(minutes=float(spec["cooldown_minutes"])), spec.get("description", ""))


def ensure_tables(con) -> None:
    con.execute(DDL)


def _is_lock_error(exc: duckdb.Error) -> bool:
    return "lock" in str(exc).lower()


def waiting_for_lock(action: Callable[[], T]) -> T:
    """Run ``action`` (an open or attach of the alerts file), again while another process holds the file, for up to
    LOCK_WAIT_SECONDS."""
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    pause = 0.02
    while True:
        try:
            return action()
        except duckdb.IOException as exc:
            if not _is_lock_error(exc) or time.monotonic() > deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.5)


def open_alerts(*, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """A connection to the alerts file, waiting while another process holds it."""
    path = paths.alerts_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    return waiting_for_lock(lambda: connect(path, read_only=read_only, threads=1))


@contextmanager
def alert_store() -> Iterator[duckdb.DuckDBPyConnection]:
    """A short-lived read-write connection to the alerts file with its tables in place; closed on exit."""
    con = open_alerts()
    try:
        ensure_tables(con)
        yield con
    finally:
        con.close()


def _now() -> datetime:
    return datetime.now(UTC)


def _payload(alert: dict, kind: str, delivery_id: str) -> str:
    """A Slack-compatible message (``text`` for any receiver, ``blocks`` for Slack's layout). The delivery id
    rides along as the idempotency key (also sent as the ``Idempotency-Key`` header): delivery is at least
    once, and a receiver drops a second copy by that key."""
    icon = {"fire": {"critical": ":rotating_light:", "warning": ":warning:"}.get(alert["severity"], ":information_source:"),
            "resolve": ":white_check_mark:"}[kind]
    head = f"{icon} [{'RESOLVED' if kind == 'resolve' else alert['severity'].upper()}] {alert['rule']}: {alert['subject']}"
    facts = [f"*{name}:* {alert[key]}" for name, key in (("release", "release"), ("crash group", "group_key"),
                                                       ("value", "value"), ("threshold", "threshold"),
                                                       ("window start", "window_start"), ("window end", "window_end"))
             if alert.get(key) is not None]
    body = {
        "text": f"{head}\n{alert['summary']}",
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{head}*\n{alert['summary']}"}},
            *([{"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in facts]}] if facts else []),
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"alert `{alert['alert_id']}` · Pitwall"}]},
        ],
        "pitwall": {"idempotency_key": delivery_id, "alert_id": alert["alert_id"], "kind": kind, "rule": alert["rule"], "subject": alert["subject"],
                    "severity": alert["severity"], "release": alert.get("release"), "group_key": alert.get("group_key"),
                    "details": alert.get("details")},
    }
    return json.dumps(body, default=str, sort_keys=True)


def _enqueue(con, alert: dict, kind: str, now: datetime) -> None:
    n = con.execute("select count(*) from alert_deliveries where alert_id = ? and kind = ?",
                    [alert["alert_id"], kind]).fetchall()[0][0]
    delivery_id = f"{alert['alert_id']}:{kind}:{n + 1}"
    con.execute("""insert into alert_deliveries (delivery_id, alert_id, kind, payload, status, attempts, created_at)
                   values (?, ?, ?, ?, 'pending', 0, ?)""",
                [delivery_id, alert["alert_id"], kind, _payload(alert, kind, delivery_id), now])


def _latest(con, rule_name: str, subject: str) -> dict | None:
    cursor = con.execute("select * from alerts where rule = ? and subject = ? order by first_fired_at desc limit 1",
                         [rule_name, subject])
    rows = cursor.fetchall()
    if not rows:
        return None
    return dict(zip([d[0] for d in cursor.description], rows[0]))


def raise_alert(*, rule: str, subject: str, summary: str, severity: str | None = None,
                value: float | None = None, threshold: float | None = None, details: dict[str, Any] | None = None,
                window_start: datetime | None = None, window_end: datetime | None = None,
                release: str | None = None, group_key: str | None = None, now: datetime | None = None) -> str | None:
    """Record that ``rule`` holds for ``subject``; returns the alert id when a message was queued, None when the
    alert was already firing (and its cooldown has not passed) or came back within the cooldown."""
    with alert_store() as con:
        return raise_alert_in(con, rule=rule, subject=subject, summary=summary, severity=severity, value=value,
                              threshold=threshold, details=details, window_start=window_start,
                              window_end=window_end, release=release, group_key=group_key, now=now)


def resolve_alert(*, rule: str, subject: str, summary: str | None = None, now: datetime | None = None) -> str | None:
    """The condition no longer holds: resolve the firing alert and queue a resolve message; returns the resolved
    alert's id, or None when nothing was firing."""
    with alert_store() as con:
        return resolve_alert_in(con, rule=rule, subject=subject, summary=summary, now=now)


def raise_alert_in(con, *, rule: str, subject: str, summary: str, severity: str | None = None,
                   value: float | None = None, threshold: float | None = None, details: dict[str, Any] | None = None,
                   window_start: datetime | None = None, window_end: datetime | None = None,
                   release: str | None = None, group_key: str | None = None,
                   now: datetime | None = None) -> str | None:
    """``raise_alert`` on a connection from ``alert_store()``."""
    spec = rule_config(rule)
    now = now or _now()
    con.execute("begin transaction")
    try:
        latest = _latest(con, rule, subject)
        fields = {"summary": summary, "severity": severity or spec.severity, "value": value, "threshold": threshold,
                  "details": json.dumps(details, default=str, sort_keys=True) if details is not None else None,
                  "window_start": window_start, "window_end": window_end, "release": release, "group_key": group_key}
        quiet = (latest is not None and latest["last_notified_at"] is not None
                 and now - latest["last_notified_at"] < spec.cooldown)
        if latest is not None and (latest["status"] == "firing" or quiet):
            # the same condition again (or back soon after a resolve): update it; notify only after the cooldown
            notify = not quiet
            con.execute("""update alerts set summary = ?, severity = ?, value = ?, threshold = ?, details = ?,
                               window_start = ?, window_end = ?, release = ?, group_key = ?,
                               last_fired_at = ?, fire_count = fire_count + 1,
                               status = 'firing', resolved_at = null,
                               last_notified_at = case when ? then ? else last_notified_at end
                           where alert_id = ?""",
                        [*fields.values(), now, notify, now, latest["alert_id"]])
            alert = {**latest, **fields, "status": "firing"}
        else:
            notify = True
            alert = {"alert_id": uuid.uuid4().hex[:16], "rule": rule, "subject": subject, **fields}
            con.execute("""insert into alerts (alert_id, rule, subject, release, group_key, severity, summary, details,
                               value, threshold, window_start, window_end, first_fired_at, last_fired_at,
                               last_notified_at, fire_count, status, resolved_at)
                           values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, 'firing', null)""",
                        [alert["alert_id"], rule, subject, release, group_key, fields["severity"], summary,
                         fields["details"], value, threshold, window_start, window_end, now, now, now])
        if notify:
            _enqueue(con, alert, "fire", now)
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return alert["alert_id"] if notify else None


def resolve_alert_in(con, *, rule: str, subject: str, summary: str | None = None,
                     now: datetime | None = None) -> str | None:
    """``resolve_alert`` on a connection from ``alert_store()``: resolve the firing alert and queue a resolve
    message."""
    now = now or _now()
    con.execute("begin transaction")
    try:
        latest = _latest(con, rule, subject)
        if latest is None or latest["status"] != "firing":
            con.execute("commit")
            return None
        con.execute("update alerts set status = 'resolved', resolved_at = ? where alert_id = ?", [now, latest["alert_id"]])
        alert = {**latest, "status": "resolved", "summary": summary or f"resolved: {latest['summary']}"}
        _enqueue(con, alert, "resolve", now)
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return latest["alert_id"]
