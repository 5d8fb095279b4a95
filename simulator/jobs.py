"""Service jobs, their estimates and invoices, as timelines decided up front.

Jobs are few next to events, so the whole run's jobs are drawn at once. The app sessions that
report a job's progress (job_assigned, job_started, ...) and the ops extracts both read these
timelines, so the apps and the backend tell the same story. -1 means "never happens".
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import ids, planted
from .world import (
    DAY_US,
    ESTIMATE_SERVICES,
    HOUR_US,
    MINUTE_US,
    REGION_UTC_OFFSET_H,
    SERVICE_BOOKING_WEIGHTS,
    SERVICES,
    US,
    World,
)

JOBS_PER_TECHNICIAN_DAY = 2.2
LEAD_IN_DAYS = 3  # jobs created before the run, so the first day starts with open jobs


@dataclass
class Jobs:
    customer: np.ndarray
    vehicle: np.ndarray
    technician: np.ndarray
    service: np.ndarray
    created_us: np.ndarray
    scheduled_for_us: np.ndarray
    assigned_us: np.ndarray
    assignment_seen_us: np.ndarray   # when the technician's app shows the assignment (job_assigned event)
    started_us: np.ndarray
    checklist_us: np.ndarray
    completed_us: np.ndarray
    cancelled_us: np.ndarray
    # estimate (one at most per job)
    estimate_amount: np.ndarray      # NaN: no estimate
    estimate_opened_us: np.ndarray   # customer opens the app from the push: estimate_sent
    estimate_viewed_us: np.ndarray
    estimate_approved_us: np.ndarray
    payment_opened_us: np.ndarray    # session in which payment_completed happens
    # CSAT (completed jobs): the customer opens the rating push; score 1-5, -1 when not answered
    csat_opened_us: np.ndarray
    csat_score: np.ndarray
    # invoice (completed jobs)
    invoice_amount: np.ndarray
    invoice_issued_us: np.ndarray
    invoice_paid_us: np.ndarray
    invoice_void_us: np.ndarray

    def __len__(self) -> int:
        return len(self.customer)


def job_ids(idx: np.ndarray) -> list[str]:
    return [f"job_{i + 1:07d}" for i in idx]


def _where(mask: np.ndarray, values: np.ndarray) -> np.ndarray:
    return np.where(mask, values, -1).astype(np.int64)


def build_jobs(world: World) -> Jobs:
    rng = ids.rng_for(world.seed, ids.JOBS)
    m = world.n_technicians
    tech_by_region = [np.flatnonzero(world.technician_region == r) for r in range(4)]
    vehicles_per_customer = np.bincount(world.vehicle_customer, minlength=world.n_customers)
    first_vehicle = np.concatenate([[0], np.cumsum(vehicles_per_customer)[:-1]])

    parts = []
    for d in range(-LEAD_IN_DAYS, world.days):
        day0 = world.day_start(d)
        eligible = np.flatnonzero(world.customer_created_us < day0)
        k = int(rng.poisson(m * JOBS_PER_TECHNICIAN_DAY))
        if k == 0 or len(eligible) == 0:
            continue
        weight = vehicles_per_customer[eligible].astype(float)
        cust = eligible[rng.choice(len(eligible), size=k, p=weight / weight.sum())]
        offset_h = REGION_UTC_OFFSET_H[world.customer_region[cust]]
        local_hour = rng.uniform(7, 20.5, k)
        created = day0 + ((local_hour - offset_h) * HOUR_US).astype(np.int64)
        parts.append((cust, created, offset_h))
    cust = np.concatenate([p[0] for p in parts])
    created = np.concatenate([p[1] for p in parts])
    offset_h = np.concatenate([p[2] for p in parts])
    order = np.argsort(created, kind="stable")
    cust, created, offset_h = cust[order], created[order], offset_h[order]
    n = len(cust)

    # Vehicle: one of the customer's vehicles that existed when the job was booked (the first always does).
    pick = (rng.random(n) * vehicles_per_customer[cust]).astype(np.int64)
    vehicle = first_vehicle[cust] + pick
    vehicle = np.where(world.vehicle_created_us[vehicle] < created, vehicle, first_vehicle[cust])
    service = rng.choice(len(SERVICES), size=n, p=SERVICE_BOOKING_WEIGHTS / SERVICE_BOOKING_WEIGHTS.sum())
    # Technician from the customer's region when there is one.
    region = world.customer_region[cust]
    tech = rng.integers(0, m, n)
    for r in range(4):
        pool = tech_by_region[r]
        sel = region == r
        if len(pool):
            tech[sel] = pool[rng.integers(0, len(pool), int(sel.sum()))]
    tech_platform = world.user_platform[world.n_customers + tech]
    cust_platform = world.user_platform[cust]

    # Booked for 1-3 days later, in a slot between 8:00 and 17:00 local time.
    local_day = (created + (offset_h * HOUR_US)) // DAY_US * DAY_US
    scheduled = local_day + rng.integers(1, 4, n) * DAY_US + (rng.uniform(8, 17, n) * HOUR_US).astype(np.int64) - offset_h * HOUR_US
    early_cancel = rng.random(n) < 0.03
    # Dispatch assigns the technician 1-12 hours before the slot (never before the booking).
    assigned = np.maximum(created + 5 * MINUTE_US, scheduled - rng.uniform(HOUR_US, 12 * HOUR_US, n).astype(np.int64))
    seen = assigned + np.minimum(rng.exponential(15 * MINUTE_US, n), 2 * HOUR_US).astype(np.int64)

    def p(probs, platform):
        return np.asarray(probs)[platform]

    started_ok = ~early_cancel & (rng.random(n) < p(planted.P_JOB_STARTED, tech_platform))
    checklist_ok = started_ok & (rng.random(n) < p(planted.P_CHECKLIST_COMPLETED, tech_platform))
    completed_ok = checklist_ok & (rng.random(n) < p(planted.P_JOB_COMPLETED, tech_platform))
    duration = (np.array([s[5] for s in SERVICES])[service] * rng.lognormal(0, 0.25, n) * MINUTE_US).astype(np.int64)
    duration = np.maximum(duration, 8 * MINUTE_US)
    started = scheduled + rng.uniform(-10 * MINUTE_US, 40 * MINUTE_US, n).astype(np.int64)
    checklist = started + (duration * 0.75).astype(np.int64)
    completed = started + duration
    cancelled = np.where(
        early_cancel, created + rng.uniform(HOUR_US, 12 * HOUR_US, n).astype(np.int64),
        np.where(~started_ok, scheduled + rng.uniform(HOUR_US, 3 * HOUR_US, n).astype(np.int64), -1),
    )

    # Estimates: the technician proposes extra work on site; the customer sees it in the app.
    has_estimate = started_ok & (rng.random(n) < planted.P_JOB_GETS_ESTIMATE)
    est_service = ESTIMATE_SERVICES[rng.integers(0, len(ESTIMATE_SERVICES), n)]
    est_amount = np.round(np.array([s[3] for s in SERVICES])[est_service] * rng.uniform(0.9, 1.3, n), 2)
    opened = started + (duration * 0.4).astype(np.int64) + rng.exponential(20 * MINUTE_US, n).astype(np.int64)
    viewed_ok = has_estimate & (rng.random(n) < p(planted.P_ESTIMATE_VIEWED, cust_platform))
    approved_ok = viewed_ok & (rng.random(n) < p(planted.P_ESTIMATE_APPROVED, cust_platform))
    paid_ok = approved_ok & (rng.random(n) < p(planted.P_PAYMENT_COMPLETED, cust_platform))
    viewed = opened + rng.uniform(8 * US, 40 * US, n).astype(np.int64)
    approved = viewed + rng.uniform(20 * US, 240 * US, n).astype(np.int64)
    pay_open = approved + rng.uniform(30 * MINUTE_US, 6 * HOUR_US, n).astype(np.int64)

    # CSAT: some customers open the rating push after the job and answer it.
    low = (tech % 10) == planted.LOW_CSAT_TECHNICIAN_MOD
    csat_open_ok = completed_ok & (rng.random(n) < planted.P_CSAT_OPENED)
    csat_opened = completed + rng.uniform(20 * MINUTE_US, 20 * HOUR_US, n).astype(np.int64)
    score = np.where(low, rng.choice(5, n, p=planted.LOW_CSAT_SCORE_PROBS), rng.choice(5, n, p=planted.CSAT_SCORE_PROBS)) + 1
    score = np.where(csat_open_ok & (rng.random(n) < planted.P_CSAT_ANSWERED), score, -1)

    # Invoices for completed jobs.
    price = np.array([s[3] for s in SERVICES])[service]
    inv_amount = np.round(price + np.where(approved_ok, est_amount, 0.0), 2)
    issued = completed + rng.uniform(MINUTE_US, 30 * MINUTE_US, n).astype(np.int64)
    void_ok = completed_ok & (rng.random(n) < 0.02)
    inv_paid_ok = completed_ok & ~void_ok & (rng.random(n) < 0.85)
    inv_paid = issued + (rng.lognormal(np.log(8 * HOUR_US), 1.0, n)).astype(np.int64)
    inv_void = issued + rng.uniform(HOUR_US, 2 * DAY_US, n).astype(np.int64)

    return Jobs(
        customer=cust, vehicle=vehicle, technician=tech, service=service,
        created_us=created, scheduled_for_us=scheduled,
        assigned_us=_where(~early_cancel, assigned), assignment_seen_us=_where(~early_cancel, seen),
        started_us=_where(started_ok, started), checklist_us=_where(checklist_ok, checklist),
        completed_us=_where(completed_ok, completed), cancelled_us=cancelled.astype(np.int64),
        estimate_amount=np.where(has_estimate, est_amount, np.nan),
        estimate_opened_us=_where(has_estimate, opened), estimate_viewed_us=_where(viewed_ok, viewed),
        estimate_approved_us=_where(approved_ok, approved), payment_opened_us=_where(paid_ok, pay_open),
        csat_opened_us=_where(csat_open_ok, csat_opened), csat_score=score.astype(np.int16),
        invoice_amount=inv_amount, invoice_issued_us=_where(completed_ok, issued),
        invoice_paid_us=_where(inv_paid_ok, inv_paid), invoice_void_us=_where(void_ok, inv_void),
    )

