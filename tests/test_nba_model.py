"""The NBA propensity model on a synthetic frame with a planted logistic propensity (models_ml.nba)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import roc_auc_score

from models_ml.nba import TrainConfig, evaluate_holdout, time_split, train_model
from models_ml.nba.synthetic import SPEC, synthetic_candidates


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    return synthetic_candidates(n_users=700, n_days=42, seed=7)


@pytest.fixture(scope="module")
def split(frame):
    return time_split(frame, holdout_days=7)


@pytest.fixture(scope="module")
def trained(split):
    return train_model(split.train, SPEC, TrainConfig(seed=3, nthread=2))


def test_time_split_holds_out_the_latest_week(frame, split):
    last = frame.get_column("as_of_date").max()
    assert split.holdout_end == last
    assert split.holdout.get_column("as_of_date").n_unique() == 7
    assert split.train.get_column("as_of_date").max() < split.holdout.get_column("as_of_date").min()
    assert len(split.train) + len(split.holdout) == len(frame)


def test_early_stopping_slice_comes_from_the_training_weeks(split, trained):
    assert trained.fit_end < trained.valid_start < split.holdout_start
    assert trained.n_fit_rows + trained.n_valid_rows == len(split.train)
    assert trained.booster.num_boosted_rounds() == trained.best_iteration + 1


def test_model_learns_the_planted_propensity_and_beats_both_baselines(split, trained):
    holdout = split.holdout
    truth_auc = roc_auc_score(holdout.get_column("label"), holdout.get_column("true_propensity"))
    report = evaluate_holdout(trained.predict(holdout), split.train, holdout)
    m = report.metrics
    assert m["model"]["auc"] >= 0.75
    assert abs(m["model"]["auc"] - truth_auc) <= 0.05
    assert m["model"]["ndcg_at_3"] > m["popularity"]["ndcg_at_3"]
    assert m["model"]["ndcg_at_3"] > m["rules"]["ndcg_at_3"]
    assert m["model"]["auc"] > max(m["popularity"]["auc"], m["rules"]["auc"])
    assert m["model"]["ece"] < 0.05
    assert report.metrics["model"]["ranking_groups"] > 100


def test_same_inputs_and_seed_give_identical_model_and_predictions(split):
    # two fits on the same 200 users' rows (two threads each, as the pipeline trains): bit for bit the same
    users = split.train.get_column("user_id").unique().sort().head(200)
    rows = split.train.filter(pl.col("user_id").is_in(users.implode()))
    first, again = (train_model(rows, SPEC, TrainConfig(seed=3, nthread=2)) for _ in range(2))
    assert first.booster.num_boosted_rounds() > 1
    assert again.best_iteration == first.best_iteration
    assert bytes(again.booster.save_raw("ubj")) == bytes(first.booster.save_raw("ubj"))
    np.testing.assert_array_equal(again.predict(split.holdout), first.predict(split.holdout))


def test_scoring_uses_the_training_categories(split, trained):
    rows = split.holdout.head(50)
    base = trained.predict(rows)
    # the same rows in another order, with a region never seen in training on one row
    shuffled = rows.reverse()
    np.testing.assert_array_equal(trained.predict(shuffled), base[::-1])
    unseen = rows.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(pl.lit("atlantis"))
                               .otherwise(pl.col("region")).alias("region"))
    scored = trained.predict(unseen)
    assert np.isfinite(scored).all()
    np.testing.assert_array_equal(scored[1:], base[1:])
