"""Alerting in Dagster: the near-real-time crash path (a sensor that notices new crash files and a small job that
ingests them, evaluates the crash rules and delivers), a delivery job with a sensor that starts it when messages
wait, and a run-failure sensor that turns any failed run into an alert on the same path.

Nothing here touches the warehouse: alerts live in their own file (store.py), so these runs never wait for a dbt
build. The ops that send messages share the `alerts` pool (one at a time), so a message is never sent twice by
two runs at once."""

import hashlib
import time

import dagster as dg
import duckdb

from orchestration.instance.executor import pool_guarded_in_process_executor

from .crashes import new_landing_files, run_crash_alerting
from .delivery import deliver_pending, webhook_url, webhook_url_env
from .store import open_alerts, raise_alert

ALERTS_POOL = "alerts"
CRASH_SENSOR_INTERVAL_SECONDS = 15  # a tick only lists files and reads the ledger; a run takes ~15 s to start
IN_FLIGHT = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
             dg.DagsterRunStatus.STARTED]
PENDING_SQL = "select count(*), max(created_at) from alert_deliveries where status <> 'delivered'"


@dg.op(pool=ALERTS_POOL, description="Ingest new crash (and event) files, evaluate the crash rules, send alerts.")
def evaluate_crash_alerts(context: dg.OpExecutionContext) -> None:
    outcome = run_crash_alerting()
    for summary in outcome.ingested:
        context.log.info(summary.describe())
    context.log.info(outcome.evaluation.message)
    context.log.info(outcome.delivery.message)


# in process: one op, and a step subprocess would add ~5 s to every alert
@dg.job(description="Near-real-time crash alerting: new crash files to raw, crash rules (rules.yaml), webhook.",
        executor_def=pool_guarded_in_process_executor)
def crash_alerting():
    evaluate_crash_alerts()


@dg.sensor(job=crash_alerting, minimum_interval_seconds=CRASH_SENSOR_INTERVAL_SECONDS,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="Starts crash_alerting when crash files land that the ingestion ledger has not seen.")
def new_crash_files_sensor(context: dg.SensorEvaluationContext):
    waiting = new_landing_files("crashes")
    if not waiting:
        return dg.SkipReason("no new crash files")
    # a run in flight takes every new file when it ingests: a second one would find nothing left
    in_flight = context.instance.get_runs(filters=dg.RunsFilter(job_name=crash_alerting.name, statuses=IN_FLIGHT),
                                          limit=1)
    if in_flight:
        return dg.SkipReason(f"run {in_flight[0].run_id[:8]} is on it")
    # one run per new set of files; the same set again only after 5 minutes (its earlier run failed)
    retry_slot = int(time.time() // 300)
    files = hashlib.sha1("\n".join(waiting).encode()).hexdigest()[:16]
    return dg.RunRequest(run_key=f"{files}:{len(waiting)}:{retry_slot}",
                         tags={"pitwall/crash_files": str(len(waiting))})


@dg.op(pool=ALERTS_POOL, description="Send every queued alert message to the webhook (retried; failures stay queued).")
def send_pending_alerts(context: dg.OpExecutionContext) -> None:
    context.log.info(deliver_pending().message)


@dg.job(description="Deliver queued alerts (partner breaches, crash rules, failed runs) to the alert webhook.")
def deliver_alerts():
    send_pending_alerts()


@dg.sensor(job=deliver_alerts, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Starts deliver_alerts when messages wait in alert_deliveries.")
def pending_alerts_sensor(context: dg.SensorEvaluationContext):
    try:
        con = open_alerts(read_only=True)
    except duckdb.IOException as exc:  # no alerts file yet, or a writer held it for longer than the wait
        return dg.SkipReason(f"alerts file not readable: {exc}")
    try:
        waiting, newest = con.execute(PENDING_SQL).fetchall()[0]
    except duckdb.CatalogException:
        return dg.SkipReason("no alerts table yet")
    finally:
        con.close()
    if not waiting:
        return dg.SkipReason("nothing to deliver")
    if not webhook_url():  # a run could only record that it has nowhere to send them, every 5 minutes
        return dg.SkipReason(f"{waiting} message(s) wait; no webhook configured ({webhook_url_env()})")
    # one run per new batch of messages, and again every 5 minutes while deliveries keep failing
    retry_slot = int(time.time() // 300)
    return dg.RunRequest(run_key=f"{newest.isoformat()}:{waiting}:{retry_slot}")


@dg.run_failure_sensor(name="failed_run_alerts", default_status=dg.DefaultSensorStatus.RUNNING,
                       monitor_all_code_locations=False,
                       description="A failed run raises a pipeline_run_failed alert; deliver_alerts sends it.")
def failed_run_alerts(context: dg.RunFailureSensorContext):
    run = context.dagster_run
    if run.job_name == deliver_alerts.name:
        return  # the delivery job failing must not feed itself
    raise_alert(rule="pipeline_run_failed", subject=f"{run.job_name} run {run.run_id[:8]}",
                summary=f"Dagster run {run.run_id} of {run.job_name} failed: {context.failure_event.message}",
                details={"run_id": run.run_id, "job": run.job_name})


defs = dg.Definitions(jobs=[crash_alerting, deliver_alerts],
                      sensors=[new_crash_files_sensor, pending_alerts_sensor, failed_run_alerts])
