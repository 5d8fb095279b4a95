"""What people do in the two apps on one day: sessions, the events in them, the API calls they
make, and the sessions that end in a crash.

Everything is vectorized over sessions: a session flow is a sequence of steps, each applied to
all sessions of a kind at once with a mask of the sessions that take it.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from . import ids, planted
from .experiments import EXPOSED_ON_HOME, EXPOSED_ON_POST_JOB, EXPOSED_ON_RECOMMENDATION, Experiments
from .jobs import Jobs
from .recommendations import (
    PLACEMENTS,
    REC_ACTIONS,
    HiddenPropensity,
    heavy_viewer,
    heavy_viewer_action,
    heavy_viewer_days,
)
from .world import (
    CUSTOMER,
    HOUR_US,
    MINUTE_US,
    REGION_UTC_OFFSET_H,
    TECH,
    US,
    World,
)

EVENTS = (
    "identify", "screen", "app_opened", "login_started", "login_succeeded", "login_failed",
    "job_assigned", "job_started", "checklist_completed", "job_completed",
    "estimate_sent", "estimate_viewed", "estimate_approved", "payment_completed",
    "recommendation_shown", "recommendation_clicked", "recommendation_accepted", "Experiment Viewed",
    "partner_widget_opened", "booking_created", "survey_shown", "survey_responded",
    "feature_request_submitted", "review_prompt_shown", "home_card_clicked", "partner_slot_chosen",
)
E = {name: i for i, name in enumerate(EVENTS)}
IDENTIFY, SCREEN = E["identify"], E["screen"]

SCREENS = (
    "Home", "Vehicles", "ServiceHistory", "Estimates", "Bookings", "Profile",          # customer app
    "Jobs", "JobDetail", "Schedule", "Parts", "Messages",                               # tech app
    "Checklist", "Estimate", "Payment",
)
S = {name: i for i, name in enumerate(SCREENS)}
CUSTOMER_BROWSE_SCREENS = np.array([S[s] for s in ("Home", "Vehicles", "ServiceHistory", "Estimates", "Bookings", "Profile")])
TECH_BROWSE_SCREENS = np.array([S[s] for s in ("Jobs", "JobDetail", "Schedule", "Parts", "Messages", "Profile")])
LOGIN_FAIL_REASONS = ("invalid_password", "timeout", "network_error", "account_locked")
PARTNERS = ("oem_network", "roadside_co", "tire_depot")
FEATURE_REQUESTS = (
    "Allow multiple técnicos per job",
    "Möchte Rechnungen als PDF exportieren 📄",
    "Dark mode please",
    "Show the technician's ETA on a map",
    "Let me reschedule from the notification",
    "請提供電子發票",
)

# Session kinds.
BROWSE, ASSIGN, WORK, ESTIMATE, PAYMENT, RATING = 0, 1, 2, 3, 4, 5
SESSION_KINDS = ("browse", "job_assigned", "job_work", "estimate", "payment", "rating")

# API routes called by the apps: (method, route, server median ms, db statements, 5xx rate).
ROUTES = (
    ("POST", "/v1/auth/login", 140.0, ("SELECT service.users",), 0.010),
    ("GET", "/v1/jobs", 90.0, ("SELECT service.jobs",), 0.010),
    ("POST", "/v1/jobs/{id}/start", 120.0, ("SELECT service.jobs", "UPDATE service.jobs"), 0.010),
    ("POST", "/v1/jobs/{id}/complete", 210.0, ("SELECT service.jobs", "UPDATE service.jobs", "INSERT service.invoices"), 0.015),
    ("POST", "/v1/estimates/{id}/approve", 160.0, ("SELECT service.estimates", "UPDATE service.estimates"), 0.010),
    ("GET", "/v1/recommendations", 110.0, ("SELECT service.recommendations",), 0.010),
    ("POST", "/v1/partners/{id}/bookings", 650.0, ("INSERT service.bookings",), 0.040),
    ("POST", "/v1/payments", 300.0, ("INSERT service.payments", "UPDATE service.invoices"), 0.010),
)
R = {route: i for i, (_m, route, *_rest) in enumerate(ROUTES)}

# Activity: browse sessions per user per day (Poisson).
CUSTOMER_BROWSE_SESSIONS_PER_DAY = 1.8
TECH_BROWSE_SESSIONS_PER_DAY = 2.0
P_IDENTIFY_WITHOUT_LOGIN = 0.2
EXTRA_SCREENS_MEAN = 1.6
MAX_EXTRA_SCREENS = 4
P_RECOMMENDATION = 0.45
P_HOME_CARD_CLICK = 0.35
P_PARTNER_WIDGET, P_BOOKING = 0.12, 0.45
# Unbooked widget opens that still pick a slot (and then leave): decided by a hash of the session, not
# by a random draw, so adding the step left every other draw of the run where it was.
P_SLOT_CHOSEN_WITHOUT_BOOKING = 0.4
# Cards of each app's home screen (the ui_layout_rules seed orders them); a browse session clicks at most one.
CUSTOMER_CARDS = ("recommendations", "vehicle_health", "maintenance_reminders", "service_history", "offers",
                  "upcoming_visit", "estimate")
TECH_CARDS = ("todays_jobs", "checklist", "parts", "navigation", "messages", "earnings")
CARDS = CUSTOMER_CARDS + TECH_CARDS
P_SURVEY, P_SURVEY_RESPONSE = 0.05, 0.6
P_FEATURE_REQUEST, P_REVIEW_PROMPT = 0.01, 0.02
P_WIFI = 0.65


@dataclass
class DayActivity:
    """One day's sessions (by start time), their events, API calls and crashes. Session arrays are
    indexed by the day-local session number; `session_gid` numbers them across the run."""
    day: int
    session_gid: np.ndarray
    session_uuid: np.ndarray   # S36
    session_user: np.ndarray
    session_device: np.ndarray
    session_app: np.ndarray
    session_platform: np.ndarray
    session_version: np.ndarray
    session_wifi: np.ndarray
    session_kind: np.ndarray
    session_job: np.ndarray    # job index for job sessions, -1 for browse sessions
    session_start_us: np.ndarray
    session_end_us: np.ndarray
    session_crash_group: np.ndarray  # -1: no crash
    session_crash_us: np.ndarray
    session_offline: np.ndarray      # events queued offline, sent hours later; no API calls get through
    # events, sorted by (session, time)
    event_session: np.ndarray
    event_us: np.ndarray
    event_kind: np.ndarray
    event_job: np.ndarray
    event_a: np.ndarray
    event_b: np.ndarray
    event_c: np.ndarray
    # API calls
    call_session: np.ndarray
    call_us: np.ndarray
    call_route: np.ndarray
    call_job: np.ndarray
    call_partner: np.ndarray
    call_forced_status: np.ndarray  # 0: decided by the server's error rate

    @property
    def n_sessions(self) -> int:
        return len(self.session_user)


class _Log:
    """Accumulates events and calls from the flows as arrays."""

    def __init__(self) -> None:
        self.events: list[tuple] = []
        self.calls: list[tuple] = []

    def event(self, sess, t, kind, job=None, a=None, b=None, c=None) -> None:
        n = len(sess)
        if n == 0:
            return
        fill = lambda v, dtype: np.full(n, -1, dtype) if v is None else np.asarray(v, dtype)  # noqa: E731
        self.events.append((sess, t, np.full(n, kind, np.int8), fill(job, np.int64), fill(a, np.int16),
                            fill(b, np.int32), fill(c, np.int16)))

    def call(self, sess, t, route, job=None, partner=None, status=None) -> None:
        n = len(sess)
        if n == 0:
            return
        self.calls.append((sess, t, np.full(n, route, np.int8),
                           np.full(n, -1, np.int64) if job is None else np.asarray(job, np.int64),
                           np.full(n, -1, np.int8) if partner is None else np.asarray(partner, np.int8),
                           np.zeros(n, np.int16) if status is None else np.asarray(status, np.int16)))


class _Flow:
    """A group of sessions walking through the same steps; `t` is each session's clock."""

    def __init__(self, log: _Log, rng: np.random.Generator, sess: np.ndarray, start: np.ndarray):
        self.log, self.rng, self.sess, self.t = log, rng, sess, start.astype(np.int64).copy()
        self.n = len(sess)
        self.alive = np.ones(self.n, dtype=bool)

    def wait(self, lo_s: float, hi_s: float) -> None:
        self.t = self.t + (self.rng.uniform(lo_s, hi_s, self.n) * US).astype(np.int64)

    def chance(self, p) -> np.ndarray:
        return self.rng.random(self.n) < p

    def emit(self, mask, kind, job=None, a=None, b=None, c=None) -> None:
        m = self.alive if mask is None else (mask & self.alive)
        pick = lambda v: None if v is None else np.broadcast_to(v, (self.n,))[m]  # noqa: E731
        self.log.event(self.sess[m], self.t[m], kind, pick(job), pick(a), pick(b), pick(c))

    def call(self, mask, route, job=None, partner=None, status=None) -> None:
        """An API call the app makes just before the event that follows."""
        m = self.alive if mask is None else (mask & self.alive)
        lead = (self.rng.uniform(0.2, 1.5, self.n) * US).astype(np.int64)
        pick = lambda v: None if v is None else np.broadcast_to(v, (self.n,))[m]  # noqa: E731
        self.log.call(self.sess[m], (self.t - lead)[m], route, pick(job), pick(partner), pick(status))

    def screens(self, first: int, choices: np.ndarray, jobs_screen_loads: bool = False, gap=(5, 60)) -> None:
        """A walk through 1-5 screens; properties.from names the previous one. In the tech app the
        Jobs screen loads the job list (GET /v1/jobs)."""
        k = 1 + np.minimum(self.rng.poisson(EXTRA_SCREENS_MEAN, self.n), MAX_EXTRA_SCREENS)
        prev = np.full(self.n, -1, np.int16)
        cur = np.full(self.n, first, np.int16)
        for j in range(MAX_EXTRA_SCREENS + 1):
            if j:
                cur = choices[self.rng.integers(0, len(choices), self.n)].astype(np.int16)
                self.wait(*gap)
            on = k > j
            self.emit(on, SCREEN, a=cur, b=prev)
            if jobs_screen_loads:
                self.call(on & (cur == S["Jobs"]), R["/v1/jobs"])
            prev = np.where(on, cur, prev)


def _login(f: _Flow, platform: np.ndarray, signin: np.ndarray, retry: bool = False) -> None:
    """The day's sign-in, right after app_opened in the user's first session of the UTC day (see
    planted.LOGIN_STEPS). A failure ends a browse session; in a job session (opened from a push about
    the job) the user tries again and gets in."""
    prompted = signin & f.chance(np.asarray(planted.P_LOGIN_STARTED)[platform])
    ok = f.chance(np.asarray(planted.P_LOGIN_SUCCEEDED)[platform])
    f.wait(2, 8)
    f.emit(prompted, E["login_started"])
    f.call(prompted, R["/v1/auth/login"], status=np.where(ok, 0, 401))
    f.wait(3, 15)
    f.emit(prompted & ok, E["login_succeeded"])
    f.emit(prompted & ~ok, E["login_failed"], a=f.rng.integers(0, len(LOGIN_FAIL_REASONS), f.n))
    if retry:
        again = prompted & ~ok
        f.wait(5, 20)
        f.emit(again, E["login_started"])
        f.call(again, R["/v1/auth/login"])
        f.wait(3, 15)
        f.emit(again, E["login_succeeded"])
    else:
        f.alive &= ~(prompted & ~ok)
    f.wait(0.5, 2)
    f.emit(prompted | (~prompted & f.chance(P_IDENTIFY_WITHOUT_LOGIN)), IDENTIFY)


def _exposures(f: _Flow, keys: tuple[str, ...], experiments: Experiments, users: np.ndarray, platform: np.ndarray,
               version: np.ndarray) -> None:
    """Experiments met on this screen: GrowthBook's tracking callback sends each exposure (users the SDK
    put in the experiment on the session's app version)."""
    for key in keys:
        sent = f.alive & experiments.exposure_sent(key, users, platform, version, f.t)
        f.emit(sent, E["Experiment Viewed"], a=experiments.index(key), c=experiments.of(key, users, version, f.t))


def _customer_browse(f: _Flow, platform: np.ndarray, signin: np.ndarray, experiments: Experiments,
                     customer: np.ndarray, region: np.ndarray, propensity: HiddenPropensity, day: int,
                     first_gid: int, version: np.ndarray) -> None:
    f.call(None, R["/v1/jobs"])
    f.emit(None, E["app_opened"])
    _login(f, platform, signin)
    f.wait(1, 4)
    _exposures(f, EXPOSED_ON_HOME, experiments, customer, platform, version)
    f.screens(S["Home"], CUSTOMER_BROWSE_SCREENS)
    _home_card_click(f, CUSTOMER, region)
    # The logging policy: a uniformly random action in a random placement; the outcome follows the
    # hidden propensity (simulator/recommendations.py), raised in the treatment of the reasons experiment.
    shown = f.chance(P_RECOMMENDATION) & f.alive
    placement = f.rng.integers(0, len(PLACEMENTS), f.n)
    action = f.rng.integers(0, len(REC_ACTIONS), f.n)
    met_at = f.t.copy()  # the experiment's dates decide by this moment, the exposure's and the outcome's
    variation = experiments.of(EXPOSED_ON_RECOMMENDATION, customer, version, met_at)
    lift = planted.EXPERIMENT_LIFT[EXPOSED_ON_RECOMMENDATION]["rec_acceptance_rate"]
    p_accept = propensity.probability(customer, action, placement, day) * np.where(variation == 1, 1 + lift, 1.0)
    accepted = shown & (f.rng.random(f.n) < p_accept)
    clicked = accepted | (shown & f.chance(planted.P_REC_CLICK_WITHOUT_ACCEPT))
    propensity.remember(customer[shown], action[shown], placement[shown], day, p_accept[shown], accepted[shown])
    f.wait(2, 20)
    f.emit(shown & experiments.exposure_sent(EXPOSED_ON_RECOMMENDATION, customer, platform, version, met_at),
           E["Experiment Viewed"],
           a=experiments.index(EXPOSED_ON_RECOMMENDATION), c=variation)
    f.call(shown, R["/v1/recommendations"])
    f.emit(shown, E["recommendation_shown"], a=placement, b=action, c=variation)
    shown_at = f.t
    f.wait(3, 40)
    f.emit(clicked, E["recommendation_clicked"], a=placement, b=action, c=variation)
    f.wait(5, 90)
    f.emit(accepted, E["recommendation_accepted"], a=placement, b=action, c=variation)
    _heavy_viewer_cards(f, shown, shown_at, customer, variation, lift, propensity, day)
    opened = f.chance(P_PARTNER_WIDGET)
    booked = opened & f.chance(P_BOOKING)
    partner = f.rng.integers(0, len(PARTNERS), f.n)
    f.wait(2, 30)
    f.emit(opened, E["partner_widget_opened"], a=partner)
    widget_opened_at = f.t
    f.wait(10, 120)
    # The slot is picked two thirds of the way to the booking (after it, the booking call takes at most
    # 1.5 s); no draw, so the random stream is the one the run had before this step existed.
    chose = booked | (opened & slot_chosen_without_booking(session_gid(f, first_gid)))
    booking_at = f.t
    f.t = widget_opened_at + (booking_at - widget_opened_at) * 2 // 3
    f.emit(chose, E["partner_slot_chosen"], a=partner, b=np.where(booked, 1, -1))
    f.t = booking_at
    f.call(booked, R["/v1/partners/{id}/bookings"], partner=partner)
    # The booking id is "bk_<session gid>" (booking_id()); the number drawn here is no longer used, the
    # draw stays so that every later draw of the day is unchanged.
    f.rng.integers(10000, 99999, f.n)
    f.emit(booked, E["booking_created"], a=partner)
    _common_tail(f, CUSTOMER)


def _heavy_viewer_cards(f: _Flow, shown: np.ndarray, shown_at: np.ndarray, customer: np.ndarray,
                        variation: np.ndarray, lift: float, propensity: HiddenPropensity, day: int) -> None:
    """The planted heavy viewers (planted.HEAVY_VIEWER_*): in the world's last week, after the card a session
    shows, they reopen their favourite action's card a few times, each in a random placement, each outcome
    drawn from the hidden propensity. Drawn from a stream of their own: every other draw of the day, and so
    the rest of the world, is unchanged."""
    world = propensity.w
    heavy = shown & f.alive & heavy_viewer(customer)
    if day not in heavy_viewer_days(world.days) or not heavy.any():
        return
    rng = ids.rng_for(world.seed, ids.HEAVY_VIEWERS, day)
    resume_at = f.t
    for card in range(planted.HEAVY_VIEWER_EXTRA_CARDS):
        placement = rng.integers(0, len(PLACEMENTS), f.n)
        action = heavy_viewer_action(customer)
        p_accept = propensity.probability(customer, action, placement, day) * np.where(variation == 1, 1 + lift, 1.0)
        accepted = heavy & (rng.random(f.n) < p_accept)
        clicked = accepted | (heavy & (rng.random(f.n) < planted.P_REC_CLICK_WITHOUT_ACCEPT))
        propensity.remember(customer[heavy], action[heavy], placement[heavy], day, p_accept[heavy], accepted[heavy])
        f.t = shown_at + (card + 1) * 2 * US
        f.emit(heavy, E["recommendation_shown"], a=placement, b=action, c=variation)
        f.t = f.t + 1 * US
        f.emit(clicked, E["recommendation_clicked"], a=placement, b=action, c=variation)
        f.t = f.t + 1 * US
        f.emit(accepted, E["recommendation_accepted"], a=placement, b=action, c=variation)
    f.t = resume_at


def session_gid(f: _Flow, first_gid: int) -> np.ndarray:
    """Run-wide session numbers of a flow's sessions (its `sess` are day-local)."""
    return first_gid + f.sess


def booking_id(gid) -> str:
    """The booking a session's booking_created creates: one booking per session at most."""
    return f"bk_{int(gid)}"


def slot_chosen_without_booking(gid: np.ndarray) -> np.ndarray:
    """Whether an unbooked widget open still chose a slot: a multiplicative hash of the session gid
    (Knuth's golden-ratio constant), uniform enough for a share and free of the random stream."""
    mixed = (np.asarray(gid, dtype=np.uint64) + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15)
    return (mixed >> np.uint64(40)).astype(np.float64) / float(1 << 24) < P_SLOT_CHOSEN_WITHOUT_BOOKING


def _tech_browse(f: _Flow, platform: np.ndarray, signin: np.ndarray, region: np.ndarray, experiments: Experiments,
                 technician: np.ndarray, version: np.ndarray) -> None:
    f.call(None, R["/v1/jobs"])
    f.emit(None, E["app_opened"])
    _login(f, platform, signin)
    f.wait(1, 4)
    _exposures(f, EXPOSED_ON_HOME, experiments, technician, platform, version)
    f.screens(S["Jobs"], TECH_BROWSE_SCREENS, jobs_screen_loads=True)
    _home_card_click(f, TECH, region)
    _common_tail(f, TECH)


def _home_card_click(f: _Flow, app: int, region: np.ndarray) -> None:
    """At most one card of the home screen is clicked; which one depends on the user's region
    (planted.HOME_CARD_WEIGHTS: what similar users engage with, for ui_layouts to learn)."""
    weights = np.asarray(planted.HOME_CARD_WEIGHTS[app], dtype=float)[region]   # (sessions, cards)
    u = f.rng.random(f.n)[:, None]
    card = (u > np.cumsum(weights / weights.sum(axis=1, keepdims=True), axis=1)).sum(axis=1)
    offset = 0 if app == CUSTOMER else len(CUSTOMER_CARDS)
    f.wait(1, 8)
    f.emit(f.alive & f.chance(P_HOME_CARD_CLICK), E["home_card_clicked"], a=offset + card)


def _common_tail(f: _Flow, app: int) -> None:
    survey = f.chance(P_SURVEY)
    f.wait(2, 20)
    f.emit(survey, E["survey_shown"])
    f.wait(5, 60)
    nps = f.rng.choice(11, f.n, p=planted.NPS_SCORE_PROBS[app])
    f.emit(survey & f.chance(P_SURVEY_RESPONSE), E["survey_responded"], c=nps)
    f.wait(2, 30)
    f.emit(f.chance(P_FEATURE_REQUEST), E["feature_request_submitted"], a=f.rng.integers(0, len(FEATURE_REQUESTS), f.n))
    f.wait(1, 10)
    f.emit(f.chance(P_REVIEW_PROMPT), E["review_prompt_shown"])


def _assign_session(f: _Flow, platform: np.ndarray, signin: np.ndarray, job: np.ndarray, seen: np.ndarray) -> None:
    f.emit(None, E["app_opened"])
    _login(f, platform, signin, retry=True)
    f.wait(1, 3)
    f.call(None, R["/v1/jobs"])
    f.emit(None, SCREEN, a=S["Jobs"], b=-1)
    f.t = np.maximum(seen, f.t + US)
    f.emit(None, E["job_assigned"], job=job)


def _work_session(f: _Flow, platform: np.ndarray, signin: np.ndarray, jobs: Jobs, job: np.ndarray) -> None:
    f.emit(None, E["app_opened"])
    _login(f, platform, signin, retry=True)
    f.wait(2, 8)
    f.emit(None, SCREEN, a=S["JobDetail"], b=-1)
    f.t = np.maximum(jobs.started_us[job], f.t + US)
    f.call(None, R["/v1/jobs/{id}/start"], job=job)
    f.emit(None, E["job_started"], job=job)
    has_checklist = jobs.checklist_us[job] >= 0
    f.t = np.maximum(jobs.checklist_us[job] - 60 * US, f.t + US)
    f.emit(has_checklist, SCREEN, a=S["Checklist"], b=S["JobDetail"])
    f.t = np.maximum(jobs.checklist_us[job], f.t + US)
    f.emit(has_checklist, E["checklist_completed"], job=job)
    done = jobs.completed_us[job] >= 0
    f.t = np.maximum(jobs.completed_us[job], f.t + US)
    f.call(done, R["/v1/jobs/{id}/complete"], job=job)
    f.emit(done, E["job_completed"], job=job)


def _estimate_session(f: _Flow, platform: np.ndarray, signin: np.ndarray, jobs: Jobs, job: np.ndarray) -> None:
    f.call(None, R["/v1/jobs"])
    f.emit(None, E["app_opened"])
    _login(f, platform, signin, retry=True)
    f.wait(1, 3)
    f.emit(None, E["estimate_sent"], job=job)
    viewed = jobs.estimate_viewed_us[job] >= 0
    f.t = np.maximum(jobs.estimate_viewed_us[job] - 2 * US, f.t + US)
    f.emit(viewed, SCREEN, a=S["Estimate"], b=S["Home"])
    f.t = np.maximum(jobs.estimate_viewed_us[job], f.t + US)
    f.emit(viewed, E["estimate_viewed"], job=job)
    approved = jobs.estimate_approved_us[job] >= 0
    f.t = np.maximum(jobs.estimate_approved_us[job], f.t + US)
    f.call(approved, R["/v1/estimates/{id}/approve"], job=job)
    f.emit(approved, E["estimate_approved"], job=job)


def _payment_session(f: _Flow, platform: np.ndarray, signin: np.ndarray, job: np.ndarray) -> None:
    f.emit(None, E["app_opened"])
    _login(f, platform, signin, retry=True)
    f.wait(2, 6)
    f.emit(None, SCREEN, a=S["Payment"], b=S["Home"])
    f.wait(20, 90)
    f.call(None, R["/v1/payments"], job=job)
    f.emit(None, E["payment_completed"], job=job)


def _rating_session(f: _Flow, platform: np.ndarray, signin: np.ndarray, jobs: Jobs, job: np.ndarray,
                    experiments: Experiments, customer: np.ndarray, version: np.ndarray) -> None:
    """The customer opens the push asking to rate a completed job (a CSAT survey about that job) on the
    job-completed screen, where the post-job placement's experiment is met."""
    f.emit(None, E["app_opened"])
    _login(f, platform, signin, retry=True)
    f.wait(1, 4)
    _exposures(f, EXPOSED_ON_POST_JOB, experiments, customer, platform, version)
    f.emit(None, E["survey_shown"], job=job)
    f.wait(8, 60)
    score = jobs.csat_score[job]
    f.emit(score > 0, E["survey_responded"], job=job, c=score)


def _local_start(rng, day0: int, n: int, region: np.ndarray, mean_h: float, sd_h: float, lo_h: float, hi_h: float) -> np.ndarray:
    """Session start times on a UTC day, shaped by the user's local time of day."""
    local_h = np.clip(rng.normal(mean_h, sd_h, n), lo_h, hi_h)
    utc_h = np.mod(local_h - REGION_UTC_OFFSET_H[region], 24.0)
    return day0 + (utc_h * HOUR_US).astype(np.int64)


def simulate_day(world: World, jobs: Jobs, day: int, first_session_gid: int, propensity: HiddenPropensity,
                 experiments: Experiments) -> DayActivity:
    rng = ids.rng_for(world.seed, ids.DAY_SESSIONS, day)
    day0, day1 = world.day_start(day), world.day_start(day + 1)
    n_users = len(world.user_app)
    n_cust = world.n_customers

    # Browse sessions.
    rate = np.where(world.user_app == CUSTOMER, CUSTOMER_BROWSE_SESSIONS_PER_DAY, TECH_BROWSE_SESSIONS_PER_DAY)
    counts = rng.poisson(rate) * (world.user_active_from_us < day1)
    b_user = np.repeat(np.arange(n_users), counts)
    is_cust = world.user_app[b_user] == CUSTOMER
    region = world.user_region[b_user]
    b_start = np.where(
        is_cust,
        _local_start(rng, day0, len(b_user), region, 13.0, 3.5, 6.0, 23.9),
        _local_start(rng, day0, len(b_user), region, 12.0, 2.8, 6.5, 19.0),
    )
    keep = b_start > world.user_active_from_us[b_user]
    b_user, b_start = b_user[keep], b_start[keep]
    b_job = np.full(len(b_user), -1, np.int64)

    # Job sessions: the session's start decides which day it belongs to.
    parts = [(b_user, b_start, b_job, np.full(len(b_user), BROWSE, np.int8))]
    tech_user = n_cust + jobs.technician
    job_starts = (
        (ASSIGN, tech_user, np.where(jobs.assignment_seen_us >= 0, jobs.assignment_seen_us - 20 * US, -1)),
        (WORK, tech_user, np.where(jobs.started_us >= 0, jobs.started_us - 180 * US, -1)),
        (ESTIMATE, jobs.customer, jobs.estimate_opened_us),
        (PAYMENT, jobs.customer, jobs.payment_opened_us),
        (RATING, jobs.customer, jobs.csat_opened_us),
    )
    for kind, users, start in job_starts:
        sel = np.flatnonzero((start >= day0) & (start < day1) & (start >= world.start_us))
        parts.append((users[sel], start[sel], sel.astype(np.int64), np.full(len(sel), kind, np.int8)))
    s_user = np.concatenate([p[0] for p in parts]).astype(np.int64)
    s_start = np.concatenate([p[1] for p in parts]).astype(np.int64)
    s_job = np.concatenate([p[2] for p in parts])
    s_kind = np.concatenate([p[3] for p in parts])
    # Number sessions in start order, so session ids and files read naturally.
    order = np.lexsort((s_kind, s_start))
    s_user, s_start, s_job, s_kind = s_user[order], s_start[order], s_job[order], s_kind[order]
    n = len(s_user)
    second = (world.user_device_count[s_user] > 1) & (rng.random(n) < 0.2)
    s_device = world.user_first_device[s_user] + second
    s_app = world.user_app[s_user]
    s_platform = world.user_platform[s_user]
    s_version = world.version_at(s_device, s_start)
    s_wifi = rng.random(n) < P_WIFI
    sess = np.arange(n, dtype=np.int64)
    # The sign-in token lasts until the end of the UTC day: the user's first session of a day may ask for it.
    signin = np.zeros(n, dtype=bool)
    signin[np.unique(s_user, return_index=True)[1]] = True

    log = _Log()
    sel = np.flatnonzero((s_kind == BROWSE) & (s_app == CUSTOMER))
    _customer_browse(_Flow(log, rng, sess[sel], s_start[sel]), s_platform[sel], signin[sel], experiments,
                     s_user[sel], world.user_region[s_user[sel]], propensity, day, first_session_gid, s_version[sel])
    sel = np.flatnonzero((s_kind == BROWSE) & (s_app == TECH))
    _tech_browse(_Flow(log, rng, sess[sel], s_start[sel]), s_platform[sel], signin[sel], world.user_region[s_user[sel]],
                 experiments, s_user[sel], s_version[sel])
    sel = np.flatnonzero(s_kind == ASSIGN)
    _assign_session(_Flow(log, rng, sess[sel], s_start[sel]), s_platform[sel], signin[sel], s_job[sel], jobs.assignment_seen_us[s_job[sel]])
    sel = np.flatnonzero(s_kind == WORK)
    _work_session(_Flow(log, rng, sess[sel], s_start[sel]), s_platform[sel], signin[sel], jobs, s_job[sel])
    sel = np.flatnonzero(s_kind == ESTIMATE)
    _estimate_session(_Flow(log, rng, sess[sel], s_start[sel]), s_platform[sel], signin[sel], jobs, s_job[sel])
    sel = np.flatnonzero(s_kind == PAYMENT)
    _payment_session(_Flow(log, rng, sess[sel], s_start[sel]), s_platform[sel], signin[sel], s_job[sel])
    sel = np.flatnonzero(s_kind == RATING)
    _rating_session(_Flow(log, rng, sess[sel], s_start[sel]), s_platform[sel], signin[sel], jobs, s_job[sel],
                    experiments, s_user[sel], s_version[sel])

    ev = [np.concatenate(col) for col in zip(*log.events)]
    order = np.lexsort((ev[1], ev[0]))
    ev = [c[order] for c in ev]
    calls = [np.concatenate(col) for col in zip(*log.calls)] if log.calls else [np.empty(0, t) for t in (np.int64, np.int64, np.int8, np.int64, np.int8, np.int16)]

    s_end = np.full(n, -1, np.int64)
    np.maximum.at(s_end, ev[0], ev[1])
    s_end = np.where(s_end < 0, s_start, s_end)

    crash_group, crash_us = _crashes(world, rng, day, s_app, s_version, s_end)
    # A crashed session's events are sent at once (its crash report needs the network as well).
    offline = (rng.random(n) < planted.OFFLINE_SESSION_SHARE) & (crash_group < 0)

    ids_rng = ids.rng_for(world.seed, ids.DAY_IDS, day)
    return DayActivity(
        day=day, session_gid=first_session_gid + sess, session_uuid=ids.uuid_ids(ids_rng, n),
        session_user=s_user, session_device=s_device, session_app=s_app, session_platform=s_platform,
        session_version=s_version, session_wifi=s_wifi, session_kind=s_kind, session_job=s_job, session_start_us=s_start,
        session_end_us=s_end, session_crash_group=crash_group, session_crash_us=crash_us, session_offline=offline,
        event_session=ev[0], event_us=ev[1], event_kind=ev[2], event_job=ev[3], event_a=ev[4], event_b=ev[5], event_c=ev[6],
        call_session=calls[0], call_us=calls[1], call_route=calls[2], call_job=calls[3], call_partner=calls[4],
        call_forced_status=calls[5],
    )


def spike_burst_us(world: World) -> tuple[int, int]:
    """[start, end) of the planted crash burst on the spike day (planted.SPIKE_BURST_*), in µs."""
    start = world.day_start(world.spike_day) + int(planted.SPIKE_BURST_START_HOUR * HOUR_US)
    return start, start + planted.SPIKE_BURST_MINUTES * MINUTE_US


def in_spike_burst(world: World, app: np.ndarray, version: np.ndarray, t_us: np.ndarray) -> np.ndarray:
    """Whether a session of (app, version) that ends at t is hit by the planted burst."""
    start, end = spike_burst_us(world)
    spike_app = planted.CRASH_GROUPS[planted.SPIKE_GROUP].app
    return (app == spike_app) & (version == planted.SPIKE_RELEASE) & (t_us >= start) & (t_us < end)


def _crashes(world: World, rng, day: int, app: np.ndarray, version: np.ndarray, end: np.ndarray):
    """At most one crash per session, right after its last event (a crash ends the session)."""
    n = len(app)
    rates = np.zeros((n, len(planted.CRASH_GROUPS)))
    for g, group in enumerate(planted.CRASH_GROUPS):
        factor = np.asarray(group.release_factor)[version]
        rates[:, g] = np.where(app == group.app, group.base_rate * factor, 0.0)
    if day == world.spike_day:
        # the bad config breaks the spike group's screen: it now crashes most sessions that reach it
        rates[in_spike_burst(world, app, version, end), planted.SPIKE_GROUP] = planted.SPIKE_BURST_CRASH_PROBABILITY
    cum = np.cumsum(rates, axis=1)
    u = rng.random(n)
    crashed = u < cum[:, -1]
    group = np.where(crashed, (u[:, None] >= cum).sum(axis=1), -1).astype(np.int8)
    crash_us = np.where(crashed, end + (rng.uniform(1, 20, n) * US).astype(np.int64), -1)
    return group, crash_us


def experiment_day_shares(start: dt.date | None, days: int | None) -> dict[str, float]:
    """Per home-screen experiment, the share of the days [start, start + days) its rule is served (its
    flags.yaml dates): only then does a session send its exposure. 1 for each without dates to go by."""
    from .experiments import sdk_features

    _, rules = sdk_features()
    if start is None or not days:
        return dict.fromkeys(EXPOSED_ON_HOME, 1.0)
    shares = {}
    for key in EXPOSED_ON_HOME:
        first, last = (dt.date.fromisoformat(str(rules[key][edge])) for edge in ("start", "end"))
        served = (min(last, start + dt.timedelta(days=days - 1)) - max(first, start)).days + 1
        shares[key] = max(served, 0) / days
    return shares


def expected_events_per_day(customers: int, technicians: int, start: dt.date | None = None,
                            days: int | None = None) -> float:
    """Expected event count per day from the behaviour constants above (used by --target-events), over the days
    [start, start + days) when given (experiment exposures depend on the dates).

    Browse sessions: app_opened, the day's sign-in in about half of them, identify, 1-5 screens,
    then optional features. Job sessions: per job per technician-day, the assignment, work,
    estimate and payment sessions.
    """
    served = experiment_day_shares(start, days)
    # Customers meet every home-screen experiment; the SRM experiment's treatment loses its exposure on Android
    # (0.45 of customers, half of them treated); technicians meet the one without a role condition.
    customer_exposures = sum(served.values()) - 0.45 * 0.5 * served[planted.SRM_EXPERIMENT]
    tech_exposures = served["personalized-home"]
    def login_part(p_start, p_ok):
        # The sign-in may happen in the user's first session of a day: about half of all sessions.
        prompted = 0.5 * p_start
        return prompted * 3 + (1 - prompted) * P_IDENTIFY_WITHOUT_LOGIN, 1 - prompted * (1 - p_ok)

    def mean(values, weights):
        return sum(v * w for v, w in zip(values, weights))

    screens = 1 + float(np.minimum(np.random.default_rng(0).poisson(EXTRA_SCREENS_MEAN, 200_000), MAX_EXTRA_SCREENS).mean())
    tail = P_SURVEY * (1 + P_SURVEY_RESPONSE) + P_FEATURE_REQUEST + P_REVIEW_PROMPT
    per_customer_session = per_tech_session = 0.0
    for app, ios_share in ((CUSTOMER, 0.55), (TECH, 0.45)):
        weights = (ios_share, 1 - ios_share)
        total = 0.0
        for p in (0, 1):
            login, alive = login_part(planted.P_LOGIN_STARTED[p], planted.P_LOGIN_SUCCEEDED[p])
            body = screens + tail
            if app == CUSTOMER:
                body += P_RECOMMENDATION * 2.3  # shown, viewed, ~0.3 click/accept
                # widget opened, slot chosen (booked, or a hashed share of the rest), booking created
                body += P_PARTNER_WIDGET * (1 + 2 * P_BOOKING + (1 - P_BOOKING) * P_SLOT_CHOSEN_WITHOUT_BOOKING)
                body += customer_exposures
            else:
                body += tech_exposures
            body += P_HOME_CARD_CLICK
            total += weights[p] * (1 + login + alive * body)
        if app == CUSTOMER:
            per_customer_session = total
        else:
            per_tech_session = total
    tw = (0.45, 0.55)
    cw = (0.55, 0.45)
    p_start = mean(planted.P_JOB_STARTED, tw)
    p_check = mean([a * b for a, b in zip(planted.P_JOB_STARTED, planted.P_CHECKLIST_COMPLETED)], tw) / p_start
    p_done = mean([a * b * c for a, b, c in zip(planted.P_JOB_STARTED, planted.P_CHECKLIST_COMPLETED, planted.P_JOB_COMPLETED)], tw) / p_start
    p_view = mean(planted.P_ESTIMATE_VIEWED, cw)
    p_appr = mean([a * b for a, b in zip(planted.P_ESTIMATE_VIEWED, planted.P_ESTIMATE_APPROVED)], cw)
    p_pay = mean([a * b * c for a, b, c in zip(planted.P_ESTIMATE_VIEWED, planted.P_ESTIMATE_APPROVED, planted.P_PAYMENT_COMPLETED)], cw)
    p_rated = p_done * planted.P_CSAT_OPENED
    per_job = 0.97 * (3 + p_start * (3 + 2 * p_check + p_done + planted.P_JOB_GETS_ESTIMATE * (2 + 2 * p_view + p_appr + 3 * p_pay)
                                     + p_rated * (2 + planted.P_CSAT_ANSWERED)))
    from .jobs import JOBS_PER_TECHNICIAN_DAY
    return (customers * CUSTOMER_BROWSE_SESSIONS_PER_DAY * per_customer_session
            + technicians * (TECH_BROWSE_SESSIONS_PER_DAY * per_tech_session + JOBS_PER_TECHNICIAN_DAY * per_job))


