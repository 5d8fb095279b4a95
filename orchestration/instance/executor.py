"""The code location's executor: Dagster's in-process executor, guarded against wedged pools.

Before a run executes its first step it frees the pool slots of runs that are no longer in progress (a killed
run's, slots.py), and while it runs a watch thread frees them again as they appear and raises the
``pool_wait_stuck`` alert with a WARNING naming the holder when one of its steps waits on a pool past the
threshold (rules.yaml). So every way a run starts (``make demo``, the daily schedule, the UI, ``dagster asset
materialize``) recovers from an earlier interrupted run, without a manual step.

Run config, for a shorter threshold (tests) or a quicker watch::

    execution:
      config:
        pool_watch: {stuck_after_seconds: 30, poll_seconds: 5}
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import dagster as dg
from dagster._core.definitions.executor_definition import (
    _core_in_process_executor_creation,
    get_retries_config,
    get_step_dependency_config_field,
)
from dagster._core.executor.in_process import InProcessExecutor

from .slots import PoolWatch, release_slots_of_ended_runs, stuck_threshold

POLL_SECONDS = 30.0  # how often a running run looks at the pools; a pool query costs a few milliseconds


class PoolGuardedInProcessExecutor(InProcessExecutor):
    def __init__(self, base: InProcessExecutor, *, stuck_after: timedelta | None, poll_seconds: float):
        super().__init__(retries=base.retries, step_dependency_config=base.step_dependency_config,
                         marker_to_close=base.marker_to_close)
        self.stuck_after, self.poll_seconds = stuck_after, poll_seconds

    def execute(self, plan_context, execution_plan) -> Iterator[dg.DagsterEvent]:
        instance = plan_context.instance
        for release in release_slots_of_ended_runs(instance):
            plan_context.log.warning(release.describe())
        watch = PoolWatch(instance, plan_context.run_id, warn=plan_context.log.warning,
                          threshold=self.stuck_after or stuck_threshold(), poll_seconds=self.poll_seconds)
        with watch:
            yield from super().execute(plan_context, execution_plan)


@dg.executor(
    name="pool_guarded_in_process",
    config_schema={
        "retries": get_retries_config(),
        "step_dependency_config": get_step_dependency_config_field(),
        "pool_watch": dg.Field({
            "stuck_after_seconds": dg.Field(int, is_required=False,
                                            description="default: pool_wait_stuck.threshold_minutes in rules.yaml"),
            "poll_seconds": dg.Field(float, default_value=POLL_SECONDS),
        }, is_required=False, default_value={}),
    },
)
def pool_guarded_in_process_executor(init_context) -> PoolGuardedInProcessExecutor:
    config = init_context.executor_config
    watch = config.get("pool_watch") or {}
    stuck_after = watch.get("stuck_after_seconds")
    return PoolGuardedInProcessExecutor(
        _core_in_process_executor_creation(config),
        stuck_after=timedelta(seconds=stuck_after) if stuck_after is not None else None,
        poll_seconds=float(watch.get("poll_seconds", POLL_SECONDS)),
    )
