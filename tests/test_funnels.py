"""Funnel marts on a simulated world: an independent Python implementation of the funnel semantics over
stg_events reproduces mart_funnel_daily exactly, and the planted funnel truths in truth.json are
recovered within one percentage point per step.

Semantics (the same as int_funnel_entries / int_funnel_entry_steps, written again here from scratch):
an entity (user, or properties.job_id for job funnels) enters a funnel at its first step-1 event of a UTC
day (ties by message_id), at most once per day; step k is the first step-k event strictly after step
k − 1 was reached and at most the funnel's window after the entry (inclusive). Breakdowns (platform,
app_version, role) are those of the entry's step-1 event.
"""

from __future__ import annotations

import csv
import json
import math
from bisect import bisect_right
from collections import defaultdict
from datetime import UTC, timedelta

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow

SEEDS = ROOT / "dbt_project" / "seeds"
# truth.json names the approval funnel estimate_approval.
TRUTH_NAME = {"login": "login", "job_completion": "job_completion", "approval": "estimate_approval"}


# --- the definitions, read from the seed files themselves --------------------------------------------

def read_definitions() -> dict[str, dict]:
    funnels = {}
    with open(SEEDS / "funnels.csv", newline="") as f:
        for row in csv.DictReader(f):
            funnels[row["funnel"]] = {"entity": row["entity"], "window": int(row["conversion_window_seconds"]), "steps": {}}
    with open(SEEDS / "funnel_steps.csv", newline="") as f:
        for row in csv.DictReader(f):
            funnels[row["funnel"]]["steps"][int(row["step_order"])] = row["event_name"]
    for spec in funnels.values():
        spec["steps"] = [spec["steps"][k] for k in sorted(spec["steps"])]
    return funnels


@pytest.fixture(scope="module")
def events(con) -> list[dict]:
    names = sorted({e for spec in read_definitions().values() for e in spec["steps"]})
    rows = con.execute("""
        select message_id, event_name, user_id, session_id, properties, occurred_at, platform, app_version, app_namespace
        from stg_events where event_name in (select unnest(?))""", [names]).fetchall()
    cols = ["message_id", "event_name", "user_id", "session_id", "properties", "occurred_at", "platform",
            "app_version", "app_namespace"]
    out = []
    for r in rows:
        e = dict(zip(cols, r))
        props = json.loads(e["properties"]) if e["properties"] else {}
        job = props.get("job_id") if isinstance(props, dict) else None
        e["job_id"] = None if job is None else str(job)
        e["role"] = "technician" if e["app_namespace"] == "com.acme.tech" else "customer"
        out.append(e)
    return out


# --- the independent implementation ------------------------------------------------------------------

def funnel_entries(events: list[dict], funnel: str, spec: dict, window_seconds: float | None) -> list[dict]:
    """Entries of one funnel with the times their steps were reached (None after the last reached)."""
    key = "user_id" if spec["entity"] == "user" else "job_id"
    first_steps: dict[tuple, dict] = {}
    later: dict[tuple[str, int], list] = defaultdict(list)
    for e in events:
        entity = e[key]
        if entity is None:
            continue
        for k, name in enumerate(spec["steps"], start=1):
            if e["event_name"] != name:
                continue
            if k == 1:
                day = e["occurred_at"].astimezone(UTC).date()
                slot = (entity, day)
                best = first_steps.get(slot)
                if best is None or (e["occurred_at"], e["message_id"]) < (best["occurred_at"], best["message_id"]):
                    first_steps[slot] = e
            else:
                later[(entity, k)].append(e["occurred_at"])
    for times in later.values():
        times.sort()
    window = None if window_seconds is None else timedelta(seconds=window_seconds)
    entries = []
    for (entity, day), first in first_steps.items():
        entered = first["occurred_at"]
        reached = [entered]
        for k in range(2, len(spec["steps"]) + 1):
            times = later.get((entity, k), [])
            i = bisect_right(times, reached[-1])  # first occurrence strictly after the previous step
            if i == len(times) or (window is not None and times[i] - entered > window):
                break
            reached.append(times[i])
        entries.append({"funnel": funnel, "entity_id": entity, "day": day, "platform": first["platform"],
                        "app_version": first["app_version"], "role": first["role"], "reached": reached})
    return entries


def quantile_cont(values: list[float], p: float) -> float | None:
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * p
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (pos - lo) * (xs[hi] - xs[lo])


def expected_daily(events: list[dict]) -> dict[tuple, dict]:
    out = {}
    for funnel, spec in read_definitions().items():
        groups: dict[tuple, list[list[float]]] = defaultdict(lambda: [[] for _ in spec["steps"]])
        for entry in funnel_entries(events, funnel, spec, spec["window"]):
            per_step = groups[(entry["day"], funnel, entry["platform"], entry["app_version"], entry["role"])]
            for k, t in enumerate(entry["reached"]):
                per_step[k].append((t - entry["reached"][0]).total_seconds())
        for (day, f, platform, version, role), per_step in groups.items():
            first = len(per_step[0])
            for k, seconds in enumerate(per_step, start=1):
                n, prev = len(seconds), len(per_step[k - 2]) if k > 1 else len(seconds)
                out[(day, f, k, platform, version, role)] = {
                    "step_event": spec["steps"][k - 1], "entered": n,
                    "from_previous": 1.0 if k == 1 else (n / prev if prev else None),
                    "from_first": n / first,
                    "median": quantile_cont(seconds, 0.5), "p90": quantile_cont(seconds, 0.9)}
    return out


def close(a, b, tol=1e-6) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and abs(a - b) <= tol)


# --- tests -------------------------------------------------------------------------------------------

def test_mart_matches_an_independent_implementation(con, events):
    rows = con.execute("""
        select day, funnel, step_order, platform, app_version, role, step_event, entered,
               converted_from_previous, converted_from_first, median_seconds_from_entry, p90_seconds_from_entry
        from mart_funnel_daily""").fetchall()
    got = {r[:6]: r[6:] for r in rows}
    assert len(got) == len(rows)
    want = expected_daily(events)
    assert want, "no funnel entries in the world"
    assert set(got) == set(want)
    for key, w in want.items():
        step_event, entered, from_prev, from_first, median, p90 = got[key]
        assert (step_event, entered) == (w["step_event"], w["entered"]), key
        assert close(from_prev, w["from_previous"]) and close(from_first, w["from_first"]), key
        assert close(median, w["median"]) and close(p90, w["p90"]), key
    # every funnel of the seeds shows up, with conversions at every step
    assert {k[1] for k in got} == set(read_definitions())


def mart_rates(con) -> dict[tuple[str, str], list[int]]:
    counts: dict[tuple[str, str], list[int]] = defaultdict(list)
    for funnel, platform, _, n in con.execute("""
            select funnel, platform, step_order, sum(entered) from mart_funnel_daily
            group by all order by funnel, platform, step_order""").fetchall():
        counts[(funnel, platform)].append(int(n))
    return counts


def assert_rates_match(counts: list[int], realized: list[int], label: str) -> None:
    assert len(counts) == len(realized), label
    for k in range(1, len(realized)):
        truth_rate = realized[k] / realized[k - 1]
        got_rate = counts[k] / counts[k - 1]
        assert abs(got_rate - truth_rate) <= 0.01, (label, k + 1, got_rate, truth_rate, counts, realized)


@pytest.mark.parametrize("funnel", ["login", "job_completion", "approval"])
def test_planted_funnel_is_recovered_by_the_mart(con, world, funnel):
    # truth.json counts, from the clean events the simulator wrote: login per user-day (the day's first
    # session, which is the one that may ask for a sign-in), the job funnels per job (one job_assigned or
    # estimate_sent per job, the whole flow within the window). The mart must give the same step
    # conversion rates within one percentage point, by platform.
    truth = world[1]["funnels"][TRUTH_NAME[funnel]]
    counts = mart_rates(con)
    for platform, realized in truth["realized"].items():
        assert realized[-1] > 0, (funnel, platform)
        assert_rates_match(counts[(funnel, platform)], realized, f"{funnel}/{platform}")
