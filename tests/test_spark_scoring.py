"""Batch scoring on Spark gives the in-process scores, row for row.

The world's candidates (built as the recommendations pipeline reads them) go to Parquet, Spark reads them
into three partitions, and `score_on_spark` scores each partition with the champion; the result must equal
`score()` on the same frame in process.

The demo world is too short to train on (the pipeline publishes the rules-only fallback there), so this
module registers a champion of its own: trained on the world's labelled exposures with a two-day holdout,
in the MLflow store of a data root of its own (the shared world's store is left as it is), and given the
champion alias whatever the promotion gate says: the gate is not what is tested here.
"""

from __future__ import annotations

import os

import polars as pl
import pytest
from pyspark.sql import functions as F

from models_ml.nba import MODEL_NAME, Champion, TrainConfig, configure, load_champion, score, train_evaluate_register
from models_ml.nba.scoring import CHAMPION
from models_ml.nba.spark_scoring import score_on_spark
from models_ml.nba.spec import FEATURES
from orchestration.recommendations.build import FEATURE_SELECT
from pitwall.spark import local_session, stop
from pitwall.warehouse import read

pytestmark = pytest.mark.slow

KEY = ["user_id", "action_id", "placement"]  # one candidate per user, action and placement
METADATA = ["policy", "model_alias", "model_version", "mlflow_run_id"]


@pytest.fixture(scope="module")
def scoring_root(world, tmp_path_factory):
    """A data root of this module's own (its MLflow store and Spark's files) for the module's duration."""
    root = tmp_path_factory.mktemp("spark_scoring") / "data"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PITWALL_DATA_DIR", str(root))
        yield root
    os.environ.pop("MLFLOW_TRACKING_URI", None)  # configure() exports it; keep it from leaking


@pytest.fixture(scope="module")
def champion(world, scoring_root) -> Champion:
    exposures = read(f"select {FEATURE_SELECT} from fct_nba_training", database=world[0] / "warehouse.duckdb")
    outcome = train_evaluate_register(exposures, FEATURES, TrainConfig(holdout_days=2, valid_days=2))
    if not outcome.decision.promoted:
        client, _ = configure()
        client.set_registered_model_alias(MODEL_NAME, CHAMPION, outcome.version)
    champ = load_champion()  # through the registry, as the pipeline loads it
    assert isinstance(champ, Champion), champ
    return champ


@pytest.fixture(scope="module")
def spark(scoring_root):
    session = local_session("pitwall-test-spark-scoring", cores=2, memory="1g")
    yield session
    stop(session)


def test_spark_scores_equal_in_process_scores(world, champion, spark, tmp_path):
    candidates = read(f"select {FEATURE_SELECT} from int_nba_candidates where ineligible_reason is null",
                      database=world[0] / "warehouse.duckdb")
    assert len(candidates) > 1000 and candidates.select(KEY).is_unique().all()
    path = tmp_path / "candidates.parquet"
    candidates.write_parquet(path)

    frame = spark.read.parquet(str(path)).repartition(3)
    scored = score_on_spark(frame, champion).withColumn("partition", F.spark_partition_id())
    on_spark = pl.from_arrow(scored.toArrow())
    in_process = score(champion, candidates)

    # every one of the three partitions scored rows of its own
    assert on_spark.group_by("partition").len().filter(pl.col("len") > 0).height == 3
    on_spark = on_spark.drop("partition")
    assert on_spark.columns == in_process.columns
    assert len(on_spark) == len(in_process)

    both = in_process.join(on_spark, on=KEY, how="inner", validate="1:1", suffix="_spark")
    assert len(both) == len(in_process)
    diffs = {c: both.select((pl.col(c) - pl.col(f"{c}_spark")).abs().max()).item()
             for c in ("propensity", "expected_value")}
    print(f"max abs diff over {len(both)} rows: {diffs}")
    assert all(d < 1e-6 for d in diffs.values()), diffs
    assert both.filter(pl.col("expected_value").is_null() != pl.col("expected_value_spark").is_null()).is_empty()
    for c in METADATA:
        assert both.filter(pl.col(c) != pl.col(f"{c}_spark")).is_empty(), c
    assert on_spark.select(METADATA).unique().rows() == [("model", CHAMPION, champion.version, champion.run_id)]
