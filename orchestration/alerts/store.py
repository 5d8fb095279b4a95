"""Alerts and their delivery outbox, in the warehouse.

Every producer (partner contract breaches, crash rules, failed runs) calls ``raise_alert`` /
``resolve_alert`` with the connection it already holds; the alert and the message to send are written in
one transaction (an outbox), and ``delivery.deliver_pending`` sends the messages later. So an alert is
never lost when the webhook is down or not configured: its delivery waits, visible in
``alert_deliveries``, and is retried on the next delivery run.

Dedupe and cooldown: one firing alert per (rule, subject). While it fires, seeing the condition again only
counts it, and sends again only once the rule's cooldown (rules.yaml) has passed since the last message.
A condition that comes back within the cooldown after a resolve reopens the alert without a message.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

RULES_FILE = Path(__file__).with_name("rules.yaml")

DDL = """
create table if not exists alerts (
    alert_id varchar primary key,
    rule varchar not null,
    subject varchar not null,          -- what the alert is about: a partner dataset, a release, a run
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
    status varchar not null,           -- pending | delivered | failed (failed ones are retried next run)
    attempts integer not null,
    last_attempt_at timestamptz,
    last_status_code integer,
    last_error varchar,
    created_at timestamptz not null,
    delivered_at timestamptz
);
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


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _payload(alert: dict, kind: str) -> str:
    """A Slack-compatible message (``text`` for any receiver, ``blocks`` for Slack's layout)."""
    icon = {"fire": {"critical": ":rotating_light:", "warning": ":warning:"}.get(alert["severity"], ":information_source:"),
            "resolve": ":white_check_mark:"}[kind]
    head = f"{icon} [{'RESOLVED' if kind == 'resolve' else alert['severity'].upper()}] {alert['rule']}: {alert['subject']}"
    facts = [f"*{name}:* {alert[key]}" for name, key in (("value", "value"), ("threshold", "threshold"),
                                                       ("window start", "window_start"), ("window end", "window_end"))
             if alert.get(key) is not None]
    body = {
        "text": f"{head}\n{alert['summary']}",
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{head}*\n{alert['summary']}"}},
            *([{"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in facts]}] if facts else []),
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"alert `{alert['alert_id']}` · Pitwall"}]},
        ],
        "pitwall": {"alert_id": alert["alert_id"], "kind": kind, "rule": alert["rule"], "subject": alert["subject"],
                    "severity": alert["severity"], "details": alert.get("details")},
    }
    return json.dumps(body, default=str, sort_keys=True)


def _enqueue(con, alert: dict, kind: str, now: datetime) -> None:
    n = con.execute("select count(*) from alert_deliveries where alert_id = ? and kind = ?",
                    [alert["alert_id"], kind]).fetchall()[0][0]
    con.execute("insert into alert_deliveries values (?, ?, ?, ?, 'pending', 0, null, null, null, ?, null)",
                [f"{alert['alert_id']}:{kind}:{n + 1}", alert["alert_id"], kind, _payload(alert, kind), now])


def _latest(con, rule_name: str, subject: str) -> dict | None:
    cursor = con.execute("select * from alerts where rule = ? and subject = ? order by first_fired_at desc limit 1",
                         [rule_name, subject])
    rows = cursor.fetchall()
    if not rows:
        return None
    return dict(zip([d[0] for d in cursor.description], rows[0]))


def raise_alert(con, *, rule: str, subject: str, summary: str, severity: str | None = None,
                value: float | None = None, threshold: float | None = None, details: dict[str, Any] | None = None,
                window_start: datetime | None = None, window_end: datetime | None = None,
                now: datetime | None = None) -> str | None:
    """Record that ``rule`` holds for ``subject``; returns the alert id when a message was queued, else None."""
    spec = rule_config(rule)
    now = now or _now()
    ensure_tables(con)
    con.execute("begin transaction")
    try:
        latest = _latest(con, rule, subject)
        fields = {"summary": summary, "severity": severity or spec.severity, "value": value, "threshold": threshold,
                  "details": json.dumps(details, default=str, sort_keys=True) if details is not None else None,
                  "window_start": window_start, "window_end": window_end}
        quiet = (latest is not None and latest["last_notified_at"] is not None
                 and now - latest["last_notified_at"] < spec.cooldown)
        if latest is not None and (latest["status"] == "firing" or quiet):
            # the same condition again (or back soon after a resolve): update it; notify only after the cooldown
            notify = not quiet
            con.execute("""update alerts set summary = ?, severity = ?, value = ?, threshold = ?, details = ?,
                               window_start = ?, window_end = ?, last_fired_at = ?, fire_count = fire_count + 1,
                               status = 'firing', resolved_at = null,
                               last_notified_at = case when ? then ? else last_notified_at end
                           where alert_id = ?""",
                        [*fields.values(), now, notify, now, latest["alert_id"]])
            alert = {**latest, **fields, "status": "firing"}
        else:
            notify = True
            alert = {"alert_id": uuid.uuid4().hex[:16], "rule": rule, "subject": subject, **fields}
            con.execute("""insert into alerts (alert_id, rule, subject, severity, summary, details, value, threshold,
                               window_start, window_end, first_fired_at, last_fired_at, last_notified_at, fire_count,
                               status, resolved_at)
                           values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, 'firing', null)""",
                        [alert["alert_id"], rule, subject, fields["severity"], summary, fields["details"], value,
                         threshold, window_start, window_end, now, now, now])
        if notify:
            _enqueue(con, alert, "fire", now)
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return alert["alert_id"] if notify else None


def resolve_alert(con, *, rule: str, subject: str, summary: str | None = None, now: datetime | None = None) -> str | None:
    """The condition no longer holds: resolve the firing alert and queue a resolve message; None if none fired."""
    now = now or _now()
    ensure_tables(con)
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
