"""A code location of one asset in a concurrency pool, run by the project's executor, that holds its slot until the
test lets go (tests/test_interrupted_runs.py). The pool is named by the test (POOL_TEST_POOL), so this module
does not import the dbt project."""

import os
import time
from pathlib import Path

import dagster as dg

from orchestration.instance.executor import pool_guarded_in_process_executor

HOLD_AT_MOST_SECONDS = 180  # a test that never lets go does not leave a process behind for long


@dg.asset(pool=os.environ.get("POOL_TEST_POOL", "warehouse"))
def holds_the_pool(context: dg.AssetExecutionContext) -> int:
    marks = Path(os.environ["POOL_TEST_DIR"])
    (marks / f"started-{context.run_id}").write_text(str(os.getpid()))
    deadline = time.monotonic() + HOLD_AT_MOST_SECONDS
    while not (marks / "release").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    (marks / f"done-{context.run_id}").write_text(str(time.time()))
    return 1


defs = dg.Definitions(assets=[holds_the_pool], executor=pool_guarded_in_process_executor)
