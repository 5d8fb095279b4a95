"""The run: build the world, then day by day simulate, deliver, render and write every source,
and finally write truth.json."""
from __future__ import annotations

import datetime as dt
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from tqdm import tqdm

from .apps import E, expected_events_per_day, simulate_day
from .experiments import assign as assign_experiments
from .experiments import truth as experiments_truth
from .jobs import build_jobs
from .landing import GZIP_LEVEL, Landing
from .malformed import MalformedPlan
from .otlp import TraceBuilder
from .partners.world import BookingLog, PartnerWorld
from .parts import truth as parts_truth
from .recommendations import HiddenPropensity
from .segment import SegmentRenderer, deliver
from .sentry import build_crashes
from .sinks import CrashSink, EventSink, OpsSink, TraceSink
from .truth import TruthRecorder, day_name
from .world import DAY_US, RELEASES, build_world

VERSION = "1.0"
DEFAULT_START = dt.date(2026, 11, 1)
CUSTOMERS_PER_TECHNICIAN = 7.5


@dataclass
class Summary:
    files: dict
    bytes: dict
    event_lines: int
    seconds: float
    truth: dict

    def text(self) -> str:
        total_files = sum(self.files.values())
        total_bytes = sum(self.bytes.values())
        rows = [f"  {s:<10} {self.files[s]:>6} files {self.bytes[s] / 1e6:>10.1f} MB" for s in self.files]
        rate = self.event_lines / self.seconds if self.seconds else 0.0
        return "\n".join([
            "landing zone written:",
            *rows,
            f"  {'total':<10} {total_files:>6} files {total_bytes / 1e6:>10.1f} MB",
            f"events: {self.event_lines:,} lines ({self.truth['events']['distinct_message_ids']:,} distinct), "
            f"crashes: {self.truth['crashes']['events_clean']:,}, traces: {self.truth['latency']['traces']:,}",
            f"seconds: {self.seconds:.1f} ({rate:,.0f} events/s)",
        ])


def size_for_events(target_events: int, days: int, start: dt.date | None = None) -> tuple[int, int]:
    """Customers and technicians (7.5 customers per technician) that produce about target_events
    over the run from ``start``: expected events per day are linear in both counts (apps.expected_events_per_day)."""
    per_customer = expected_events_per_day(1, 0, start, days)
    per_technician = expected_events_per_day(0, 1, start, days)
    customers = target_events / days / (per_customer + per_technician / CUSTOMERS_PER_TECHNICIAN)
    return max(1, round(customers)), max(1, round(customers / CUSTOMERS_PER_TECHNICIAN))


def generate(out: Path, *, customers: int, technicians: int, days: int, seed: int, start: dt.date = DEFAULT_START,
             malformed: bool = True, events_per_file: int = 100_000, progress: bool = True, overwrite: bool = False) -> Summary:
    if days < 1 or customers < 1 or technicians < 1 or events_per_file < 1:
        raise ValueError("days, customers, technicians and events_per_file must be positive")
    began = time.perf_counter()
    out = Path(out)
    Landing.prepare(out, overwrite)
    _clear_partner_files(out)
    world = build_world(seed, start, days, customers, technicians)
    jobs = build_jobs(world)
    plan = MalformedPlan.make(days, malformed)
    truth = TruthRecorder(world, jobs)
    landing = Landing(out)
    experiments = assign_experiments(world)
    renderer, tracer = SegmentRenderer(world, jobs, experiments), TraceBuilder(world, jobs)
    events = EventSink(world, landing, plan, truth, events_per_file)
    crashes = CrashSink(world, landing, plan, truth, events_per_file)
    traces = TraceSink(world, landing, plan, truth, events_per_file)
    ops = OpsSink(world, jobs, landing, plan, truth, events_per_file)

    propensity = HiddenPropensity(world, ops.telemetry)
    bookings = BookingLog()
    event_gid = session_gid = 0
    with tqdm(total=days, unit="day", file=sys.stderr, disable=not progress, desc="simulating") as bar:
        for d in range(days):
            act = simulate_day(world, jobs, d, session_gid, propensity, experiments)
            truth.sessions(session_gid, act.session_user, act.session_app, act.session_version, act.session_platform)
            session_gid += act.n_sessions

            dl = deliver(world, act, event_gid)
            sess = act.event_session[dl.index]
            arrival_day = (dl.received_us - world.start_us) // DAY_US
            true_day = (dl.true_us - world.start_us) // DAY_US
            kind = act.event_kind[dl.index]
            truth.events(dl.gid, kind, act.session_gid[sess], act.event_job[dl.index], dl.true_us, act.event_c[dl.index], dl.skew_us, dl.offline,
                         arrival_day > true_day, event_gid + len(act.event_us))
            frame = renderer.render(act, dl).with_columns(
                key=pl.Series(dl.received_us), gid=pl.Series(dl.gid),
                protected=pl.Series(act.session_crash_group[sess] >= 0),  # keep crashed sessions whole
                copy=pl.lit(False), skew=pl.Series(dl.skew_us), true_us=pl.Series(dl.true_us),
            )
            events.add(frame, arrival_day, d)
            bookings.add(act, dl.true_us)
            event_gid += len(act.event_us)

            opened = np.unique(sess[kind == E["app_opened"]])
            crashes.add(build_crashes(world, act, opened, len(jobs)))
            traces.add(tracer.build(act), d)
            ops.day(d)
            events.flush(d)
            crashes.flush(d)
            traces.flush(d)
            bar.update(1)
            bar.set_postfix(events=f"{events.lines_written:,}")
    # The partners' side follows the whole run's bookings: built once the days are simulated, with its own
    # random stream; its internal extracts go out as the other ops tables do.
    partners = PartnerWorld.build(world, jobs, bookings)
    for d in range(days):
        for name, table in partners.ops_tables(d).items():
            ops._write(f"ops/{name}", name, f"ops/{name}/dt={day_name(world, d)}", table)
    landing.close()
    partner_written = partners.write_landing(out)
    landing.files["partners"], landing.bytes["partners"] = partner_written["files"], partner_written["bytes"]

    run = {
        "simulator_version": VERSION, "seed": seed, "start_date": start.isoformat(), "days": days,
        "end_exclusive": (start + dt.timedelta(days=days)).isoformat(),
        "customers": customers, "technicians": technicians, "jobs": len(jobs), "devices": int(len(world.device_user)),
        "malformed": malformed, "events_per_file": events_per_file, "gzip_level": GZIP_LEVEL,
        "spike_day": world.spike_day,
        "release_ship_dates": {r.version: t for r, t in zip(RELEASES, _dates(world.release_us))},
        "files": dict(landing.files), "bytes": dict(landing.bytes),
    }
    parts = parts_truth(world, jobs, ops.part_usage, ops.extracts.job_id)
    result = truth.write(out / "truth.json", run, plan, dict(events.copies), propensity.truth(), parts,
                         experiments_truth(experiments, world), partners.truth)
    return Summary(files=dict(landing.files), bytes=dict(landing.bytes), event_lines=events.lines_written,
                   seconds=time.perf_counter() - began, truth=result)


def _clear_partner_files(out: Path) -> None:
    """A previous run's partner files (only what the simulator writes there: connectors land beside them)."""
    for name in ("warranty", "roadside"):
        shutil.rmtree(out / "partners" / name, ignore_errors=True)
    (out / "partners" / "world.json").unlink(missing_ok=True)


def _dates(us) -> list[str]:
    return [dt.datetime.fromtimestamp(int(t) / 1e6, dt.UTC).isoformat().replace("+00:00", "Z") for t in us]
