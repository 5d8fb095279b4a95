"""From experiments/flags.yaml and the warehouse's summary statistics to `mart_experiment_results` and
`mart_experiment_daily`: plain functions, called by the Dagster assets next door (and by tests).

    experiment_definitions   flags.yaml → one row per experiment × variation (a dbt source)
    mart_experiment_results  per experiment × metric × treatment variation: users, means, absolute and
                             relative lift with 95 % intervals, p-value, CUPED estimates and the variance
                             they removed, SRM, zero-variance arms, the verdict with the interval it is read
                             from (verdict.py: the one definition; none under SRM), guardrail regressions,
                             the experiment's status and decision metric. Mean and ratio
                             metrics come from int_experiment_metric_stats, quantile metrics (e.g.
                             api_latency_p95) from int_experiment_quantile_stats: their `*_mean` are the
                             arms' quantiles, `control_users`/`treatment_users` the exposed users (the
                             clusters) and `control_events`/`treatment_events` the events (requests)
    mart_experiment_daily    the primary metric's lift and interval, cumulated day by day
The statistics are orchestration/experiments/stats.py (gbstats' definitions, checked against gbstats).
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from pitwall.flags import Flags, load_flags
from pitwall.warehouse import read

from .stats import results_frame
from .verdict import with_verdicts

DEFINITION_SCHEMA = {
    "experiment_key": pl.String, "feature_key": pl.String, "experiment_name": pl.String,
    "variation_index": pl.Int32, "variation_id": pl.String, "variation_name": pl.String, "weight": pl.Float64,
    "coverage": pl.Float64, "is_control": pl.Boolean, "start_date": pl.Date, "end_date": pl.Date,
    "primary_metric": pl.String, "guardrail_metrics": pl.List(pl.String), "hypothesis": pl.String,
}


def definitions_frame(flags: Flags | None = None) -> pl.DataFrame:
    """One row per experiment × variation; variation_id is the key the apps log (GrowthBook's Result.key)."""
    flags = flags or load_flags()
    rows = []
    for key, experiment in flags.experiments().items():
        for index, weight in enumerate(experiment["weights"]):
            rows.append({
                "experiment_key": key, "feature_key": experiment["feature_key"],
                "experiment_name": experiment.get("name") or key, "variation_index": index,
                "variation_id": experiment["variation_keys"][index],
                "variation_name": experiment["variation_names"][index],
                "weight": float(weight), "coverage": float(experiment["coverage"]), "is_control": index == 0,
                "start_date": experiment["start"], "end_date": experiment["end"],
                "primary_metric": experiment["primary_metric"], "guardrail_metrics": list(experiment["guardrail_metrics"]),
                "hypothesis": experiment["hypothesis"],
            })
    return pl.DataFrame(rows, schema=DEFINITION_SCHEMA)


def _status(start: dt.date, end: dt.date, data_end: dt.date | None) -> str:
    if data_end is None or data_end < start:
        return "not started"
    return "finished" if data_end > end else "running"


QUANTILE_STATS_COLUMNS = (
    "experiment_key", "variation_id", "variation_index", "is_control", "weight", "metric", "metric_type", "users",
    "sum", "sum_squares", "denominator_sum", "denominator_sum_squares", "sum_products", "quantile_level",
    "quantile_n", "quantile_nstar", "quantile", "quantile_lower", "quantile_upper",
)


def metric_stats() -> pl.DataFrame:
    """The statistics results_frame reads: int_experiment_metric_stats' mean and ratio metrics and
    int_experiment_quantile_stats' quantile metrics."""
    stats = read("select * from int_experiment_metric_stats")
    quantiles = read(f"select {', '.join(QUANTILE_STATS_COLUMNS)} from int_experiment_quantile_stats")
    if quantiles.is_empty():
        return stats
    return pl.concat([stats, quantiles], how="diagonal_relaxed")


def experiment_results(alpha: float = 0.05) -> pl.DataFrame:
    """`mart_experiment_results` from int_experiment_metric_stats, int_experiment_quantile_stats and the
    definitions."""
    stats = metric_stats()
    definitions = read("select * from experiment_definitions")
    metrics = read("select metric, label as metric_label, higher_is_better from experiment_metrics")
    data_end = read("select cast(max(occurred_at) as date) as last_day from int_user_facts")["last_day"][0]
    exposed = stats.group_by("experiment_key").agg(exposed=pl.col("users").sum() // pl.col("metric").n_unique())
    analysable = exposed.filter(pl.col("exposed") > 0)["experiment_key"]
    # no exposures yet: an empty table with every column, so readers and checks see the same schema
    results = results_frame(stats.filter(pl.col("experiment_key").is_in(analysable.implode())), alpha=alpha)
    experiments = definitions.filter(pl.col("is_control")).select(
        "experiment_key", "experiment_name", "feature_key", "start_date", "end_date", "primary_metric",
        "guardrail_metrics", "hypothesis")
    out = (results.join(experiments, on="experiment_key", how="left")
           .join(definitions.select("experiment_key", "variation_id", "variation_name"), on=["experiment_key", "variation_id"],
                 how="left")
           .join(metrics, on="metric", how="left"))
    status = [_status(s, e, data_end) for s, e in zip(out["start_date"], out["end_date"])]
    out = out.with_columns(
        status=pl.Series(status, dtype=pl.String),
        is_primary=pl.col("metric") == pl.col("primary_metric"),
        is_guardrail=pl.col("guardrail_metrics").list.contains(pl.col("metric")),
        data_through=pl.lit(data_end),
    ).rename({"start_date": "planned_start_date", "end_date": "planned_end_date"}).drop("guardrail_metrics")
    return with_verdicts(out).sort("experiment_key", pl.col("is_primary").not_(), "metric", "variation_id")


DAILY_SCHEMA = {
    "experiment_key": pl.String, "metric": pl.String, "variation_id": pl.String, "day": pl.Date,
    "control_users": pl.Int64, "treatment_users": pl.Int64, "control_mean": pl.Float64, "treatment_mean": pl.Float64,
    "relative_lift": pl.Float64, "relative_ci_low": pl.Float64, "relative_ci_high": pl.Float64,
    "absolute_lift": pl.Float64, "absolute_ci_low": pl.Float64, "absolute_ci_high": pl.Float64, "p_value": pl.Float64,
}


def experiment_daily(alpha: float = 0.05) -> pl.DataFrame:
    """`mart_experiment_daily`: the primary metric's cumulative lift and interval on each day (no series for a
    quantile primary metric: int_experiment_metric_stats_daily has only per-user sums)."""
    stats = read("select * from int_experiment_metric_stats_daily").filter(pl.col("metric_type") != "quantile")
    days = []
    for (experiment_key, day), group in stats.group_by("experiment_key", "day", maintain_order=True):
        if group.filter(pl.col("is_control")).height != 1 or group.height < 2:
            continue  # a day on which one arm had no one yet
        days.append(results_frame(group.drop("day"), alpha=alpha).with_columns(day=pl.lit(day)))
    if not days:  # no exposures yet: an empty table with every column
        return pl.DataFrame(schema=DAILY_SCHEMA)
    frame = pl.concat(days, how="diagonal_relaxed")
    return frame.select([pl.col(c).cast(t) for c, t in DAILY_SCHEMA.items()]).sort("experiment_key", "variation_id", "day")
