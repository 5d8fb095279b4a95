"""The whole pipeline as one job, run daily (UTC), after the night's landing files are complete."""

import dagster as dg

pitwall_pipeline = dg.define_asset_job(
    "pitwall_pipeline",
    selection=dg.AssetSelection.all(),
    description="Ingest new landing files, then build and test every dbt model.",
)

daily_pipeline = dg.ScheduleDefinition(
    name="daily_pipeline",
    job=pitwall_pipeline,
    cron_schedule="0 3 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)

defs = dg.Definitions(jobs=[pitwall_pipeline], schedules=[daily_pipeline])
