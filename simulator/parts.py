"""The hidden truth behind the parts a job uses, so parts suggestions have something real to learn.

Every job gets a probability for each part it may use (planted.PART_USE): the service's own catalog parts
by their catalog position, a battery when the vehicle's battery is failing on the job's day (whatever the
service), brake pads on inspection jobs of old vehicles; an electric vehicle uses no oil-change parts.
Completed jobs report the parts drawn from these probabilities in the `job_parts` extract; truth.json
gives the probabilities for the jobs still open when the data ends (what parts_suggestions estimates).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import ids, planted
from .jobs import Jobs
from .world import DAY_US, SERVICES, World

SERVICE_INDEX = {s[0]: i for i, s in enumerate(SERVICES)}
INSPECTIONS = (SERVICE_INDEX["svc_brake_inspection"], SERVICE_INDEX["svc_multi_point_inspection"])


@dataclass
class PartUsage:
    """One row per (job, part) the job may use: its hidden probability, whether it was used, how many."""
    job: np.ndarray
    part: np.ndarray          # index into world.part_rows
    probability: np.ndarray
    used: np.ndarray
    quantity: np.ndarray


def draw_part_usage(world: World, jobs: Jobs, battery_volts_on_day, vehicle_age_years: np.ndarray,
                    electric: np.ndarray) -> PartUsage:
    """`battery_volts_on_day(vehicle, day)` is the vehicle's true battery voltage on a run day."""
    rng = ids.rng_for(world.seed, ids.PARTS)
    p = planted.PART_USE
    part_service = np.array([SERVICE_INDEX[row[5]] for row in world.part_rows])
    n_parts = len(part_service)
    first_part = {s: int(np.flatnonzero(part_service == s)[0]) for s in range(len(SERVICES))}
    # position of each part within its service's catalog list
    position = np.zeros(n_parts, np.int64)
    for s in range(len(SERVICES)):
        own = np.flatnonzero(part_service == s)
        position[own] = np.arange(len(own))
    own_p = np.asarray(p["own_part_by_position"])[np.minimum(position, len(p["own_part_by_position"]) - 1)]

    n = len(jobs)
    job_day = (jobs.scheduled_for_us - world.start_us) // DAY_US
    # own parts: every part of the job's service
    parts_of = [np.flatnonzero(part_service == s) for s in range(len(SERVICES))]
    counts = np.array([len(parts_of[s]) for s in jobs.service])
    own_job = np.repeat(np.arange(n), counts)
    own_part = np.concatenate([parts_of[s] for s in jobs.service]) if n else np.zeros(0, np.int64)
    own_prob = own_p[own_part] * np.where(
        electric[jobs.vehicle[own_job]] & (jobs.service[own_job] == SERVICE_INDEX["svc_oil_change"]),
        p["electric_oil_change_factor"], 1.0)
    # a battery for a failing battery
    failing = battery_volts_on_day(jobs.vehicle, job_day) < p["failing_battery_volts"]
    bat_job = np.flatnonzero(failing)
    bat_part = np.full(len(bat_job), first_part[SERVICE_INDEX["svc_battery_replacement"]])
    bat_prob = np.full(len(bat_job), p["battery_when_failing"])
    # brake pads on inspections of old vehicles
    old = vehicle_age_years[jobs.vehicle] >= p["old_vehicle_years"]
    brk_job = np.flatnonzero(old & np.isin(jobs.service, INSPECTIONS))
    brk_part = np.full(len(brk_job), first_part[SERVICE_INDEX["svc_brake_pads"]])
    brk_prob = np.full(len(brk_job), p["brake_pads_on_inspection_age_8_plus"])

    job = np.concatenate([own_job, bat_job, brk_job])
    part = np.concatenate([own_part, bat_part, brk_part])
    prob = np.concatenate([own_prob, bat_prob, brk_prob])
    # a part with two reasons is used unless neither reason uses it
    key, inverse = np.unique(job * n_parts + part, return_inverse=True)
    miss = np.bincount(inverse, weights=np.log1p(-np.minimum(prob, 1 - 1e-12)), minlength=len(key))
    probability = 1 - np.exp(miss)
    job, part = key // n_parts, key % n_parts
    used = rng.random(len(key)) < probability
    quantity = np.where(rng.random(len(key)) < 0.15, 2, 1).astype(np.int64)
    return PartUsage(job=job.astype(np.int64), part=part.astype(np.int64), probability=probability, used=used,
                     quantity=quantity)


def truth(world: World, jobs: Jobs, usage: PartUsage, job_ids) -> dict:
    """The hidden probabilities of the jobs still open at the end of the data (not completed or
    cancelled by then), for tests of parts_suggestions."""
    end = world.start_us + world.days * DAY_US
    open_at_end = ((jobs.created_us < end)
                   & ~((jobs.completed_us >= 0) & (jobs.completed_us < end))
                   & ~((jobs.cancelled_us >= 0) & (jobs.cancelled_us < end)))
    rows = np.flatnonzero(open_at_end[usage.job])
    completed = (jobs.completed_us[usage.job] >= 0) & (jobs.completed_us[usage.job] < end)
    return {
        "candidate_pairs": int(len(usage.job)),
        "used_on_completed_jobs": int((usage.used & completed).sum()),
        "open_jobs_at_end": int(open_at_end.sum()),
        "open_job_parts": [[job_ids[j], world.part_rows[k][0], round(float(pr), 6)]
                           for j, k, pr in zip(usage.job[rows], usage.part[rows], usage.probability[rows])],
        "planted": planted.PART_USE,
        "note": "open_job_parts: [job_id, part_id, hidden probability the job uses the part] for every part a job "
                "still open at the end of the data may use; parts not listed have probability 0",
    }
