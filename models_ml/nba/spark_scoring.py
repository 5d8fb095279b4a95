"""Batch scoring on Spark: the champion scores a Spark DataFrame partition by partition.

    champ = load_champion()                                   # as for in-process scoring
    scored = score_on_spark(spark.read.parquet(path), champ)   # lazy; + the columns score() adds

There is one definition of scoring: every Arrow batch of every partition becomes a polars frame that goes
through :func:`models_ml.nba.scoring.score` (the encoding stored with the model, ``inplace_predict``, the
expected value and the model's metadata columns), exactly as ``orchestration/recommendations`` scores in
process. Spark only moves the rows; the scores are the same to the last bit.

How it scales: the work is ``partitions`` independent tasks, run ``executors × cores`` at a time; each task
streams its partition through in Arrow batches (``spark.sql.execution.arrow.maxRecordsPerBatch``, 10,000
rows by default), so a Python worker holds one batch, never the partition. The booster travels once as bytes
(``save_raw``) inside the pickled function (pyspark ships a function above 1 MB as a broadcast) and is
rebuilt once per Python worker: workers are reused across tasks (``spark.python.worker.reuse``), and keep the
last model they built. Spark sets ``OMP_NUM_THREADS`` to ``spark.task.cpus`` in its workers, so XGBoost
uses one thread per task slot rather than every core in each of them.

This is distributed scoring only; to train on more rows than one machine holds, ``xgboost.spark``
(``SparkXGBClassifier``) trains one booster across the executors, and it scores here the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

import polars as pl
import pyarrow as pa
import xgboost as xgb
from pyspark.sql import DataFrame
from pyspark.sql.pandas.types import to_arrow_schema
from pyspark.sql.types import DoubleType, FloatType, StringType, StructField, StructType

from models_ml.nba.features import Encoding
from models_ml.nba.scoring import Champion, score


def added_fields(schema: StructType) -> list[StructField]:
    """The columns :func:`score` adds to a frame of this schema, as Spark types (Spark needs the output
    schema before it runs anything; tests/test_spark_scoring.py checks it against ``score()``'s output)."""
    fields = [StructField("propensity", FloatType())]
    if "action_value" in schema.fieldNames():
        fields.append(StructField("expected_value", DoubleType()))
    fields += [StructField(name, StringType()) for name in ("policy", "model_alias", "model_version", "mlflow_run_id")]
    return fields


def score_on_spark(frame: DataFrame, champion: Champion) -> DataFrame:
    """``frame`` plus the columns :func:`models_ml.nba.scoring.score` adds (``propensity``, ``expected_value``
    when the frame has ``action_value``, ``policy``, ``model_alias``, ``model_version``, ``mlflow_run_id``),
    scored per partition on the executors. Lazy, like any Spark transformation; the input columns pass
    through untouched, and the partitioning is kept."""
    added = StructType(added_fields(frame.schema))
    overlap = set(added.fieldNames()) & set(frame.schema.fieldNames())
    if overlap:
        raise ValueError(f"frame already has the score columns {sorted(overlap)}")
    model = {
        "raw": bytes(champion.booster.save_raw()), "encoding": champion.encoding.to_json(),
        "model_name": champion.model_name, "version": champion.version, "run_id": champion.run_id,
        "alias": champion.alias,
    }
    return frame.mapInArrow(partial(_score_batches, model=model, added=to_arrow_schema(added)),
                            StructType(frame.schema.fields + added.fields))


# The champion this Python worker last built, keyed by its identity: rebuilt only when another model comes.
_worker_champion: tuple[tuple[str, str, str], Champion] | None = None


def _champion(model: dict) -> Champion:
    global _worker_champion
    key = (model["model_name"], model["version"], model["run_id"])
    if _worker_champion is None or _worker_champion[0] != key:
        booster = xgb.Booster()
        booster.load_model(bytearray(model["raw"]))
        champion = Champion(booster=booster, encoding=Encoding.from_json(model["encoding"]),
                            model_name=model["model_name"], version=model["version"], run_id=model["run_id"],
                            alias=model["alias"])
        _worker_champion = (key, champion)
    return _worker_champion[1]


def _score_batches(batches: Iterator[pa.RecordBatch], model: dict, added: pa.Schema) -> Iterator[pa.RecordBatch]:
    """Runs on an executor, once per partition: each batch scored by the in-process code path."""
    champion = _champion(model)
    for batch in batches:
        scored = score(champion, pl.from_arrow(batch))
        # only the new columns come back from polars (cast to the types Spark was promised); the input
        # columns are Spark's own arrays, passed through as they came
        new = scored.select(added.names).to_arrow().cast(added)
        out = pa.Table.from_batches([batch])
        for field in added:
            out = out.append_column(field, new.column(field.name))
        yield from out.to_batches()
