"""Alert delivery in Dagster: a small job that sends queued messages, a sensor that starts it when messages
wait, and a run-failure sensor that turns any failed run into an alert on the same path."""

import time

import duckdb
import dagster as dg

from orchestration.dbt.assets import WAREHOUSE_POOL
from pitwall import paths
from pitwall.duck import connect

from .delivery import deliver_pending
from .store import raise_alert

PENDING_SQL = "select count(*), max(created_at) from alert_deliveries where status <> 'delivered'"


@dg.op(pool=WAREHOUSE_POOL, description="Send every queued alert message to the webhook (retried; failures stay queued).")
def send_pending_alerts(context: dg.OpExecutionContext) -> None:
    con = connect(paths.warehouse_path())
    try:
        report = deliver_pending(con)
    finally:
        con.close()
    context.log.info(report.message)


@dg.job(description="Deliver queued alerts (partner breaches, crash rules, failed runs) to the alert webhook.")
def deliver_alerts():
    send_pending_alerts()


@dg.sensor(job=deliver_alerts, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Starts deliver_alerts when messages wait in alert_deliveries.")
def pending_alerts_sensor(context: dg.SensorEvaluationContext):
    path = paths.warehouse_path()
    if not path.exists():
        return dg.SkipReason("no warehouse yet")
    try:
        con = connect(path, read_only=True)
    except duckdb.IOException as exc:  # a run holds the write lock; look again next tick
        return dg.SkipReason(f"warehouse busy: {exc}")
    try:
        waiting, newest = con.execute(PENDING_SQL).fetchall()[0]
    except duckdb.CatalogException:
        return dg.SkipReason("no alerts table yet")
    finally:
        con.close()
    if not waiting:
        return dg.SkipReason("nothing to deliver")
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
    con = connect(paths.warehouse_path())
    try:
        raise_alert(con, rule="pipeline_run_failed", subject=f"{run.job_name} run {run.run_id[:8]}",
                    summary=f"Dagster run {run.run_id} of {run.job_name} failed: {context.failure_event.message}",
                    details={"run_id": run.run_id, "job": run.job_name})
    finally:
        con.close()


defs = dg.Definitions(jobs=[deliver_alerts], sensors=[pending_alerts_sensor, failed_run_alerts])
