"""The alert path: alerts and their outbox in a real DuckDB file of their own, delivery to a real HTTP receiver
on 127.0.0.1."""

from __future__ import annotations

import json
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import dagster as dg
from webhook_receiver import HUGE_ANSWER_BYTES, WebhookReceiver

from orchestration.alerts import alert_store, deliver_pending, raise_alert, resolve_alert, rule_config
from orchestration.alerts.definitions import failed_run_alerts, pending_alerts_sensor
from orchestration.alerts.delivery import webhook_url_env
from pitwall import paths

FAST = dict(backoff_initial=0.01, backoff_max=0.05, timeout=0.5)
T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def query(sql: str, params: list | None = None) -> list[tuple]:
    """A query on the alerts file through a short-lived connection, as the alert path itself opens it."""
    with alert_store() as con:
        return con.execute(sql, params or []).fetchall()


def deliveries() -> list[dict]:
    with alert_store() as con:
        cur = con.execute("select * from alert_deliveries order by created_at, delivery_id")
        rows = cur.fetchall()
        return [dict(zip([d[0] for d in cur.description], r)) for r in rows]


def breach(now=T0, subject="oem/service_orders: volume on 2026-11-19", value=3.0):
    return raise_alert(rule="partner_sla_breach", subject=subject, summary="3 orders, expected at least 12",
                       value=value, threshold=12.0, details={"partner": "oem"}, now=now)


def test_an_alert_survives_a_failing_webhook_and_arrives_once(data_root):
    alert_id = breach()
    assert alert_id and [d["status"] for d in deliveries()] == ["pending"]
    with WebhookReceiver(script=(500, 503, 429, "stall")) as hook:
        report = deliver_pending(url=hook.url, max_attempts=6, **FAST)
        assert (report.delivered, report.failed) == (1, 0)
        # the stalled POST was accepted but its answer came after the timeout: sent again, under the same key,
        # and the receiver keeps one
        assert hook.requests == 5 and len(hook.accepted) == 2 and len(hook.received) == 1
        body = hook.received[0]
    (row,) = deliveries()
    assert row["status"] == "delivered" and row["attempts"] == 5 and row["last_status_code"] == 200
    assert {key for key, _ in hook.accepted} == {row["delivery_id"]} == {body["pitwall"]["idempotency_key"]}
    assert row["claim_token"] is None and row["claimed_until"] is None
    # Slack-compatible: text for any receiver, blocks for Slack; the machine-readable part rides along
    assert "partner_sla_breach" in body["text"] and "oem/service_orders" in body["text"]
    assert body["blocks"][0]["type"] == "section" and body["pitwall"]["alert_id"] == alert_id
    assert json.loads(body["pitwall"]["details"]) == {"partner": "oem"}
    # nothing left to send: a second run sends nothing
    with WebhookReceiver() as hook:
        assert deliver_pending(url=hook.url, **FAST).delivered == 0 and hook.requests == 0


def test_failed_deliveries_stay_visible_and_are_retried_later(data_root):
    breach()
    with WebhookReceiver(script=(500,) * 10) as hook:
        report = deliver_pending(url=hook.url, max_attempts=3, **FAST)
    assert (report.delivered, report.failed, report.attempts) == (0, 1, 3)
    (row,) = deliveries()
    assert row["status"] == "failed" and row["last_status_code"] == 500 and "500" in row["last_error"]
    unconfigured = deliver_pending(url="", **FAST)
    assert not unconfigured.configured and "1 delivery" in unconfigured.message
    with WebhookReceiver() as hook:
        assert deliver_pending(url=hook.url, **FAST).delivered == 1 and len(hook.received) == 1
    assert deliveries()[0]["status"] == "delivered"


def test_a_delivery_claimed_by_a_live_sender_is_left_to_it_and_a_dead_senders_claim_expires(data_root):
    breach()
    (row,) = deliveries()
    with alert_store() as con:  # another sender took it and is still within its claim
        con.execute("update alert_deliveries set status = 'sending', claim_token = 'other', claimed_until = ? "
                    "where delivery_id = ?", [datetime.now(UTC) + timedelta(minutes=5), row["delivery_id"]])
    with WebhookReceiver() as hook:
        report = deliver_pending(url=hook.url, **FAST)
        assert (report.delivered, report.claimed_elsewhere, hook.requests) == (0, 1, 0)
    with alert_store() as con:  # that sender died: its claim ran out
        con.execute("update alert_deliveries set claimed_until = ? where delivery_id = ?",
                    [datetime.now(UTC) - timedelta(seconds=1), row["delivery_id"]])
    with WebhookReceiver() as hook:
        assert deliver_pending(url=hook.url, **FAST).delivered == 1
        assert [key for key, _ in hook.accepted] == [row["delivery_id"]]
    assert deliveries()[0]["status"] == "delivered"


def test_two_senders_at_once_post_each_delivery_once(data_root):
    for day in range(1, 9):
        breach(subject=f"oem/service_orders: volume on 2026-11-{day:02d}")
    with WebhookReceiver() as hook:
        with ThreadPoolExecutor(2) as pool:
            reports = list(pool.map(lambda _: deliver_pending(url=hook.url, **FAST), range(2)))
        assert sum(r.delivered for r in reports) == 8 and sum(r.failed for r in reports) == 0
        assert hook.requests == 8 and len(hook.received) == 8  # without the claim both senders post all eight
    assert {d["status"] for d in deliveries()} == {"delivered"}


def test_a_huge_answer_is_not_read_whole(data_root):
    breach()
    with WebhookReceiver(script=("huge",)) as hook:
        tracemalloc.start()
        try:
            report = deliver_pending(url=hook.url, **{**FAST, "timeout": 5.0})
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert report.delivered == 1 and hook.requests == 1
    assert peak < HUGE_ANSWER_BYTES / 8  # the answer's first bytes only, not its 64 MiB


def test_a_client_error_is_not_retried(data_root):
    breach()
    with WebhookReceiver(script=(404,)) as hook:
        report = deliver_pending(url=hook.url, max_attempts=5, **FAST)
        assert hook.requests == 1
    assert report.failed == 1 and deliveries()[0]["last_status_code"] == 404


def test_cooldown_dedupes_and_resolve_sends_once(data_root):
    cooldown = rule_config("partner_sla_breach").cooldown
    assert breach() is not None
    assert breach(now=T0 + timedelta(minutes=5), value=4.0) is None          # same condition, in cooldown
    assert breach(subject="oem/service_orders: volume on 2026-11-18", now=T0 + timedelta(minutes=6))  # another
    assert len(deliveries()) == 2
    (fires, value) = query("select fire_count, value from alerts where subject like '%11-19'")[0]
    assert (fires, value) == (2, 4.0)
    assert breach(now=T0 + cooldown + timedelta(minutes=1)) is not None      # still firing after the cooldown
    assert len(deliveries()) == 3

    subject = "oem/service_orders: volume on 2026-11-19"
    resolved = resolve_alert(rule="partner_sla_breach", subject=subject, now=T0 + cooldown + timedelta(minutes=2))
    assert resolved is not None
    assert resolve_alert(rule="partner_sla_breach", subject=subject) is None  # nothing firing any more
    kinds = [d["kind"] for d in deliveries()]
    assert kinds.count("resolve") == 1
    # back within the cooldown after the resolve: reopened quietly, no new message
    assert breach(now=T0 + cooldown + timedelta(minutes=3)) is None
    assert query("select status from alerts where alert_id = ?", [resolved]) == [("firing",)]
    with WebhookReceiver() as hook:
        deliver_pending(url=hook.url, **FAST)
        texts = [b["text"] for b in hook.received]
    assert len(texts) == 4 and texts[-1].startswith(":white_check_mark: [RESOLVED]")


def test_a_failed_run_raises_an_alert(data_root):
    @dg.op
    def explode():
        raise RuntimeError("partner API key rejected")

    @dg.job
    def doomed():
        explode()

    instance = dg.DagsterInstance.ephemeral()
    result = doomed.execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE")
    context = dg.build_run_status_sensor_context(sensor_name=failed_run_alerts.name, dagster_event=failure,
                                                 dagster_instance=instance, dagster_run=result.dagster_run)
    failed_run_alerts(context.for_run_failure())
    assert not paths.warehouse_path().exists()  # alerting never touches the warehouse
    rows = query("select rule, subject, severity, summary from alerts")
    assert deliveries()[0]["status"] == "pending"
    assert len(rows) == 1 and rows[0][0] == "pipeline_run_failed" and rows[0][2] == "critical"
    assert rows[0][1].startswith("doomed run ") and result.run_id in rows[0][3]


def test_the_delivery_sensor_starts_a_run_only_when_messages_wait_and_a_webhook_is_configured(data_root, monkeypatch):
    monkeypatch.delenv(webhook_url_env(), raising=False)
    with dg.DagsterInstance.ephemeral() as instance:
        def tick():
            return pending_alerts_sensor(dg.build_sensor_context(instance=instance))

        assert isinstance(tick(), dg.SkipReason)  # no alerts file yet
        breach()
        skipped = tick()  # a message waits, but a run would have nowhere to send it
        assert isinstance(skipped, dg.SkipReason) and webhook_url_env() in skipped.skip_message
        monkeypatch.setenv(webhook_url_env(), "http://127.0.0.1:9/alerts")
        assert isinstance(tick(), dg.RunRequest)
