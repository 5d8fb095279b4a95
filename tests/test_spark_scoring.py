"""Batch scoring on Spark gives the in-process scores, row for row.

The world's candidates (built as the recommendations pipeline reads them) go to Parquet, Spark reads them
into three partitions, and `score_on_spark` scores each partition with the champion; the result must equal
`score()` on the same frame in process.

The champion is the one `make demo` trained, gated and registered on the demo world, loaded through the
registry as the pipeline loads it; Spark's files go to a data root of this module's own.
"""

from __future__ import annotations

import os

import polars as pl
import pytest
from pyspark.sql import functions as F

from models_ml.nba import Champion, load_champion, score
from models_ml.nba.scoring import CHAMPION
from models_ml.nba.spark_scoring import score_on_spark
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
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PITWALL_DATA_DIR", str(world[0]))
        # a module fixture runs before the autouse one that clears it: an earlier module's store must not win
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        champ = load_champion()
    os.environ.pop("MLFLOW_TRACKING_URI", None)  # configure() exports the world's store; Spark's root is ours
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
    assert len(candidates) > 300 and candidates.select(KEY).is_unique().all()
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
