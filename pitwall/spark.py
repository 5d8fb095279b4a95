"""One way to start Spark on this machine: a local session from the pyspark wheel, offline, UTC.

    spark = local_session("pitwall-bench", cores=4, memory="4g")
    ...
    stop(spark)

Local mode runs the driver and executors in one JVM (``local[cores]``: one task per core) and the Python
workers that run pandas/Arrow UDFs as child processes of it. Nothing is downloaded: no Maven packages, so
no Delta or Iceberg. Spark's warehouse and metastore files go under ``$PITWALL_DATA_DIR/spark/``, never the
working directory.

``SPARK_CONF`` holds the settings that do not depend on the machine or the data root, for anything that
starts Spark another way (dbt-spark's session profile, a benchmark, ``spark-submit --conf``).
"""

from __future__ import annotations

import os
import sys

from pyspark.sql import SparkSession

from pitwall.paths import data_dir

SPARK_CONF: dict[str, str] = {
    # the warehouse, DuckDB and the dashboards all speak UTC; Spark would otherwise use the JVM's zone
    "spark.sql.session.timeZone": "UTC",
    # no web UI (nothing to look at in tests and batch jobs, and it would hold a port), and no progress
    # bars: a pipeline's logs are not a terminal
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    # the default 200 shuffle partitions are tiny tasks on one machine; adaptive execution coalesces further
    "spark.sql.shuffle.partitions": "4",
    # columnar transfer between the JVM and Python (toPandas, createDataFrame, pandas UDFs, mapInArrow)
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}


def local_session(app_name: str = "pitwall", cores: int = 2, memory: str = "2g") -> SparkSession:
    """A local SparkSession with ``cores`` task slots and ``memory`` of driver heap (which, in local mode, is
    the executors' heap too).

    If a session is already running in this process it is returned as it is: the JVM's master and memory are
    fixed when it starts (``stop()`` it first to get a differently sized one)."""
    # Set before the JVM starts: Python workers must run this interpreter (the one with xgboost, polars and
    # this project installed), and Spark must not look for a routable interface on an offline machine.
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    root = data_dir() / "spark"
    root.mkdir(parents=True, exist_ok=True)
    builder = SparkSession.builder.appName(app_name).master(f"local[{cores}]")
    conf = {
        **SPARK_CONF,
        "spark.driver.memory": memory,
        "spark.sql.warehouse.dir": str(root / "warehouse"),
        # Derby (a Hive metastore, if one is ever enabled) writes derby.log and metastore_db/ into its home
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={root / 'derby'}",
    }
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def stop(spark: SparkSession | None = None) -> None:
    """Stop ``spark`` (default: this process's active session, if any); does nothing when none is running."""
    spark = spark or SparkSession.getActiveSession()
    if spark is not None:
        spark.stop()
