"""Sentry crash events, one JSON object per line, shaped like the sentry-sdk sample.

A crash ends its session: it happens seconds after the session's last event. Mobile SDKs send a
crash report at the next launch, so it arrives minutes to hours later (the dt folder is the
arrival date); in the planted burst users relaunch at once, so its reports arrive within minutes. The
arrival is the event's `received` (epoch seconds, as Sentry's relay stamps it). The event `timestamp` is the crash time as Sentry stores it after its clock-drift
correction, so it is true time; ~10% of events carry it as epoch seconds (a number), which the
Sentry protocol also allows.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

import numpy as np

from . import ids, planted
from .apps import DayActivity, in_spike_burst
from .jobs import job_ids
from .world import (
    APPS,
    DEVICE_MODELS,
    HOUR_US,
    MINUTE_US,
    OS_NAMES,
    OS_VERSIONS,
    PLATFORMS,
    RELEASES,
    US,
    World,
    release_name,
)

SDK = {
    "name": "sentry.python",
    "version": "2.75.0",
    "packages": [{"name": "pypi:sentry-sdk", "version": "2.75.0"}],
    "integrations": [],
}
EPOCH_TIMESTAMP_SHARE = 0.10


@dataclass
class CrashBatch:
    arrival_us: np.ndarray
    crash_us: np.ndarray
    group: np.ndarray
    app: np.ndarray
    version: np.ndarray
    session_gid: np.ndarray
    lines: list[str]


def _frame(module: str, function: str, abs_path: str, lineno: int, in_app: bool) -> dict:
    return {"filename": abs_path, "abs_path": abs_path, "function": function, "module": module, "lineno": lineno, "in_app": in_app}


def _frames(group: planted.CrashGroup, g: int, via_router: bool) -> list[dict]:
    """Oldest first; the crashing frame is the last in-app one, library frames follow it."""
    app_pkg = group.module.split(".")[0]
    path = "/app/" + group.module.replace(".", "/") + ".py"
    frames = [{"filename": "main.py", "abs_path": "/app/main.py", "function": "run", "module": "app_main", "lineno": 4, "in_app": True}]
    if via_router:
        frames.append(_frame(f"{app_pkg}.ui.router", "dispatch", f"/app/{app_pkg}/ui/router.py", 57, True))
    frames.append(_frame(group.module, "entry", path, 12 + g, True))
    frames.append(_frame(group.module, group.function, path, 40 + 7 * g, True))
    for k, (module, function, abs_path) in enumerate(group.library_frames):
        frames.append(_frame(module, function, abs_path, 101 + 13 * k, False))
    return frames


def build_crashes(world: World, act: DayActivity, sessions_opened: np.ndarray, n_jobs: int) -> CrashBatch:
    """Crash events of the day's crashed sessions whose report arrives before the run ends and
    whose session was seen by the collector (`sessions_opened`: day-local session numbers)."""
    rng = ids.rng_for(world.seed, ids.DAY_CRASHES, act.day)
    crashed = np.flatnonzero(act.session_crash_group >= 0)
    n = len(crashed)
    # Reported at the next launch: often minutes later, sometimes hours.
    soon = rng.random(n) < 0.5
    delay = np.where(soon, rng.exponential(5 * MINUTE_US, n), rng.lognormal(np.log(3 * HOUR_US), 1.0, n)).astype(np.int64)
    crash_us = act.session_crash_us[crashed]
    if act.day == world.spike_day:
        # a crash loop: the user relaunches straight into the broken screen, and that launch sends the report
        burst = in_spike_burst(world, act.session_app[crashed], act.session_version[crashed], crash_us) & (
            act.session_crash_group[crashed] == planted.SPIKE_GROUP)
        # a stream of its own, so the draws of every other crash stay as they were
        relaunch = (ids.rng_for(world.seed, ids.DAY_CRASHES, act.day, 2).uniform(
            *planted.SPIKE_BURST_REPORT_DELAY_SECONDS, n) * US).astype(np.int64)
        delay = np.where(burst, relaunch, delay)
    arrival = crash_us + US + delay
    as_epoch = rng.random(n) < EPOCH_TIMESTAMP_SHARE
    via_router = rng.random(n) < 0.5
    handled = rng.random(n) < 0.15
    event_ids = ids.hex_ids(rng, n, 16)
    trace_ids = ids.hex_ids(rng, n, 16)
    span_ids = ids.hex_ids(rng, n, 8)
    job_pick = rng.integers(0, max(1, n_jobs), n)
    opened = np.zeros(act.n_sessions, dtype=bool)
    opened[sessions_opened] = True
    keep = (arrival < world.end_us) & opened[crashed]

    lines: list[str] = []
    rows = np.flatnonzero(keep)
    for i in rows:
        s = crashed[i]
        g = int(act.session_crash_group[s])
        group = planted.CRASH_GROUPS[g]
        app, version, dev = int(act.session_app[s]), int(act.session_version[s]), int(act.session_device[s])
        model, _maker, platform, family = DEVICE_MODELS[world.device_model[dev]]
        value = group.value
        if "{job_id}" in value:  # the job the session was about, else some job
            job = int(act.session_job[s]) if act.session_job[s] >= 0 else int(job_pick[i])
            value = value.format(job_id=job_ids([job])[0])
        t = int(crash_us[i])
        timestamp = round(t / US, 6) if as_epoch[i] else dt.datetime.fromtimestamp(t / US, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        event = {
            "level": "error" if handled[i] else "fatal",
            "exception": {"values": [{
                "mechanism": {"type": "generic", "handled": True} if handled[i] else {"type": "excepthook", "handled": False},
                "module": None,
                "type": group.exception_type,
                "value": value,
                "stacktrace": {"frames": _frames(group, g, bool(via_router[i]))},
            }]},
            "event_id": event_ids[i].decode(),
            "timestamp": timestamp,
            "received": round(int(arrival[i]) / US, 3),
            "contexts": {
                "device": {"model": model, "family": family, "arch": "arm64", "simulator": False, "id": world.device_id[dev].decode()},
                "os": {"name": OS_NAMES[platform], "version": OS_VERSIONS[platform][world.device_os_version[dev]]},
                "app": {"app_version": RELEASES[version].version, "app_build": RELEASES[version].build, "app_identifier": APPS[app].app_id},
                "trace": {"trace_id": trace_ids[i].decode(), "span_id": span_ids[i].decode(), "parent_span_id": None},
            },
            "user": {"id": world.user_id[act.session_user[s]]},
            "transaction_info": {},
            "tags": {"session_id": act.session_uuid[s].decode(), "platform": PLATFORMS[platform]},
            "breadcrumbs": {"values": []},
            "release": release_name(app, version),
            "environment": "production",
            "server_name": "",
            "sdk": SDK,
            "platform": "python",
        }
        lines.append(json.dumps(event))
    return CrashBatch(
        arrival_us=arrival[rows], crash_us=crash_us[rows], group=act.session_crash_group[crashed[rows]].astype(np.int64),
        app=act.session_app[crashed[rows]].astype(np.int64), version=act.session_version[crashed[rows]].astype(np.int64),
        session_gid=act.session_gid[crashed[rows]], lines=lines,
    )
