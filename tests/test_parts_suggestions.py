"""parts_suggestions: the parts each upcoming job will likely need, against the simulator's hidden truth.

The simulator draws the parts every job uses from hidden probabilities (simulator/parts.py): the service's
own parts, a battery when the vehicle's battery is failing whatever the job, brake pads on inspections of
old vehicles. truth.json holds those probabilities for the jobs still open when the data ends; the parts
model, trained only on the parts completed jobs reported, must estimate them better than the service's
parts list alone (how often the service's past jobs used the part).
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def estimates(world, con):
    """Every scoring candidate with the model's probability, the parts-list baseline and the hidden truth."""
    from models_ml.parts.model import fit, parts_list_baseline, predict

    _, truth = world
    rows = con.sql("select * from int_job_part_candidates").pl()
    training = rows.filter(pl.col("purpose") == "training")
    upcoming = rows.filter(pl.col("purpose") == "scoring")
    hidden = pl.DataFrame(truth["parts"]["open_job_parts"], schema=["job_id", "part_id", "truth"], orient="row")
    model = fit(training)
    scored = upcoming.with_columns(
        model=pl.Series(predict(model, upcoming), dtype=pl.Float64),
        baseline=pl.Series(parts_list_baseline(training, upcoming)))
    return scored.join(hidden, on=["job_id", "part_id"], how="left").with_columns(pl.col("truth").fill_null(0.0)), hidden


def test_candidates_cover_the_parts_upcoming_jobs_may_need(estimates):
    scored, hidden = estimates
    likely = hidden.filter(pl.col("job_id").is_in(scored.get_column("job_id").unique().implode()) & (pl.col("truth") >= 0.3))
    covered = likely.join(scored, on=["job_id", "part_id"], how="semi")
    assert len(likely) > 100
    assert len(covered) / len(likely) >= 0.95, likely.join(scored, on=["job_id", "part_id"], how="anti")


def test_the_model_recovers_the_hidden_part_probabilities(estimates):
    scored, _ = estimates
    error = scored.select(model=(pl.col("model") - pl.col("truth")).abs().mean(),
                          baseline=(pl.col("baseline") - pl.col("truth")).abs().mean()).row(0, named=True)
    assert error["model"] < 0.1, error
    assert error["model"] < error["baseline"], error
    # what the parts list cannot know: a part needed because of the vehicle, not the booked service
    beyond = scored.filter(~pl.col("part_in_service_catalog") & (pl.col("truth") >= 0.4))
    assert len(beyond) >= 3
    gap = beyond.select(model=(pl.col("model") - pl.col("truth")).abs().mean(),
                        baseline=(pl.col("baseline") - pl.col("truth")).abs().mean()).row(0, named=True)
    assert gap["model"] < gap["baseline"] - 0.15, gap


def test_published_suggestions_are_upcoming_jobs_likeliest_parts_with_reasons(world, con):
    root, _ = world
    table = pl.read_parquet(root / "published" / "serving" / "parts_suggestions.parquet")
    assert len(table) > 50
    jobs = con.sql("select job_id, technician_id, scheduled_for as booked_for, completed_at, cancelled_at from stg_jobs").pl()
    as_of = con.sql("select max(as_of_date) from int_nba_spine where purpose = 'scoring'").fetchall()[0][0]
    joined = table.join(jobs, on="job_id", how="left").with_columns(pl.col("booked_for").dt.convert_time_zone("UTC"))
    assert joined.filter(pl.col("technician_id").is_null()).is_empty()
    assert (joined["user_id"] == joined["technician_id"]).all()
    assert joined.filter(pl.col("completed_at").is_not_null() | pl.col("cancelled_at").is_not_null()).is_empty()
    assert (joined["scheduled_for"] == joined["booked_for"]).all()
    days_ahead = (joined["scheduled_for"].dt.date() - as_of).dt.total_days()
    assert days_ahead.min() >= 0 and days_ahead.max() < 7
    per_job = table.group_by("job_id").agg(n=pl.len(), ranks=pl.col("rank").sort(), probs=pl.col("probability").sort_by("rank"))
    assert per_job["n"].max() <= 5
    assert all(r == list(range(1, len(r) + 1)) for r in per_job["ranks"].to_list())
    assert all(p == sorted(p, reverse=True) for p in per_job["probs"].to_list())
    assert table["probability"].min() >= 0.2 and table["probability"].max() <= 1
    assert table.filter(pl.col("reason_codes").list.len() == 0).is_empty()
    assert table["mlflow_run_id"].null_count() == 0 and table["placement"].unique().to_list() == ["pre_job_parts"]
    # sorted by user: the Parquet file's row groups let a reader skip to one technician
    assert table["user_id"].is_sorted()


def test_a_switched_off_placement_gives_no_suggestions_and_inputs_fix_the_output(world, monkeypatch):
    root, _ = world
    monkeypatch.setenv("PITWALL_DATA_DIR", str(root))
    from orchestration.recommendations.parts import build_parts_suggestions
    from pitwall.flags import parse_flags

    built = build_parts_suggestions(reuse=False)
    reused = build_parts_suggestions()
    first, again = built.table, reused.table
    # the training rows have not changed: the second run scores with the kept fit instead of refitting
    assert built.summary["model"].startswith("refit on ") and reused.summary["model"].startswith("reused model trained on")
    assert reused.summary["mlflow_run_id"] == built.summary["mlflow_run_id"]
    # the fit is on record in the world's own MLflow store, under its experiment
    from mlflow import MlflowClient

    from models_ml.nba.tracking import configure
    configure()
    run = MlflowClient().get_run(built.summary["mlflow_run_id"])
    assert MlflowClient().get_experiment(run.info.experiment_id).name == "pitwall-parts"
    assert run.info.artifact_uri.startswith((root / "mlflow").as_uri())
    assert run.data.metrics["holdout_auc"] > 0.5
    # a well-kept run: the model and baseline metrics, the plots, the booster as an MLflow model that says what
    # it reads (with an example) and scores as the fit the pipeline used
    assert {"holdout_auc", "baseline_auc", "holdout_log_loss", "baseline_log_loss"} <= set(run.data.metrics)
    artifacts = {a.path for a in MlflowClient().list_artifacts(run.info.run_id)} | \
        {a.path for a in MlflowClient().list_artifacts(run.info.run_id, "plots")}
    assert {"encoding.json", "metrics.json", "plots/roc.png", "plots/precision_recall.png",
            "plots/calibration.png", "plots/feature_importance.png"} <= artifacts
    # (MLflow 3 keeps the model itself as the run's logged model, which runs:/<run id>/model resolves to)
    import mlflow

    from models_ml.nba.features import encode
    from models_ml.parts.model import fit
    from pitwall.warehouse import read
    info = mlflow.models.get_model_info(f"runs:/{run.info.run_id}/model")
    assert info.signature is not None and info.saved_input_example_info is not None
    training = read("select * from int_job_part_candidates where purpose = 'training'")
    fresh = fit(training)
    logged = mlflow.xgboost.load_model(f"runs:/{run.info.run_id}/model")
    sample = encode(training.head(200), fresh.encoding)
    assert np.allclose(logged.inplace_predict(sample), fresh.booster.inplace_predict(sample), atol=1e-6)
    stable = [c for c in first.columns if c not in ("scoring_run_id", "generated_at", "mlflow_run_id")]
    assert first.select(stable).equals(again.select(stable))  # the kept fit suggests what a refit does
    refit = build_parts_suggestions(reuse=False)
    assert refit.summary["mlflow_run_id"] != built.summary["mlflow_run_id"]
    assert refit.table.select(stable).equals(again.select(stable))

    off = parse_flags({"features": [{"key": "rec-placement-pre_job_parts", "defaultValue": True, "rules": [
        {"id": "parts-off", "condition": {"role": "technician"}, "force": False}]}]})
    built = build_parts_suggestions(flags=off)
    assert built.table.is_empty() and built.summary["jobs_placement_off"] > 0
