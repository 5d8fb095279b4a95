"""The knobs behind the planted truths, in one place so truth.json can report them as planted.

Funnel probabilities are per step given the previous step, by platform (index 0 = ios, 1 = android).
"""
from __future__ import annotations

from dataclasses import dataclass

# Login, per user and UTC day: the sign-in token lasts until the end of the UTC day, so the user's first
# session of a day (whatever its kind) asks for a sign-in right after app_opened with P_LOGIN_STARTED:
# app_opened -> login_started -> login_succeeded (else login_failed: a browse session ends there, a job
# session retries and gets in). Later sessions of the day carry no login events, so per user-day counts
# of the day's first app_opened estimate these probabilities.
LOGIN_STEPS = ("app_opened", "login_started", "login_succeeded")
P_LOGIN_STARTED = (0.55, 0.65)
P_LOGIN_SUCCEEDED = (0.92, 0.78)

# Job completion, per job, on the technician's platform.
JOB_STEPS = ("job_assigned", "job_started", "checklist_completed", "job_completed")
P_JOB_STARTED = (0.95, 0.90)
P_CHECKLIST_COMPLETED = (0.90, 0.78)
P_JOB_COMPLETED = (0.97, 0.93)

# Estimate approval, per job with an estimate, on the customer's platform.
APPROVAL_STEPS = ("estimate_sent", "estimate_viewed", "estimate_approved", "payment_completed")
P_ESTIMATE_VIEWED = (0.85, 0.72)
P_ESTIMATE_APPROVED = (0.55, 0.45)
P_PAYMENT_COMPLETED = (0.90, 0.80)
P_JOB_GETS_ESTIMATE = 0.55  # share of started jobs where the technician sends an estimate


# Feedback. NPS (0-10) answered in the app's in-session survey, by app (index: world.TECH, world.CUSTOMER).
NPS_SCORE_PROBS = (
    (0.04, 0.03, 0.04, 0.05, 0.06, 0.08, 0.10, 0.14, 0.18, 0.15, 0.13),   # technicians: NPS -12
    (0.02, 0.01, 0.02, 0.03, 0.03, 0.05, 0.06, 0.08, 0.15, 0.25, 0.30),   # customers: NPS +33
)
# CSAT (1-5) for a completed job, asked by push: the customer opens it with P_CSAT_OPENED, answers with
# P_CSAT_ANSWERED. Technicians whose index % 10 == LOW_CSAT_TECHNICIAN_MOD get worse scores.
P_CSAT_OPENED, P_CSAT_ANSWERED = 0.6, 0.75
CSAT_SCORE_PROBS = (0.02, 0.03, 0.08, 0.30, 0.57)       # mean 4.37
LOW_CSAT_SCORE_PROBS = (0.15, 0.15, 0.25, 0.25, 0.20)   # mean 3.20
LOW_CSAT_TECHNICIAN_MOD = 3


# Recommendations: the hidden propensity to accept an action shown in the customer app (logit terms; see
# simulator/recommendations.py). Actions: battery_replacement, tire_rotation, brake_service, wiper_blades,
# cabin_filter, oil_change; placements: home_card, post_job, service_history.
REC_PROPENSITY = {
    "base": (-2.6, -2.4, -2.8, -2.6, -2.4, -2.4),
    "battery_per_volt_below_12_45": 5.0,    # battery_replacement: + 5 × (12.45 V − voltage)
    "oil_life_below_half": 4.0,             # oil_change: + 4 × (0.5 − oil life share)
    "electric_oil_change": -4.0,            # an electric car needs no oil change
    "tire_per_kpa_below_232": 0.25,         # tire_rotation: + 0.25 × (232 kPa − lowest tire)
    "brakes_per_year_over_5": 0.35,         # brake_service: + 0.35 × (vehicle age − 5 years)
    "wipers_rainy_region": 1.5,             # wiper_blades in the north and west regions
    "cabin_filter_per_daily_km_over_40": 0.02,  # cabin_filter: + 0.02 × (usual daily km − 40)
    "fleet": 0.6,                           # fleet customers buy more
    "placement": (0.0, 0.5, -0.3),          # home_card, post_job, service_history
    "accepted_same_action_90d": -2.5,
    "declined_same_action_30d": -0.8,
}
P_REC_CLICK_WITHOUT_ACCEPT = 0.15
# Heavy recommendation viewers: in the world's last week a few customers (a share, picked by a hash of the
# customer) keep reopening one action's card (their favourite, also by the hash) in every browse session that
# shows a recommendation, so that they are shown more than the policy's weekly cap (models_ml/nba/policy.py, 20
# in 7 days) while their other actions stay as eligible as anyone's: the cap, not the decline rule, decides.
HEAVY_VIEWER_SHARE = 0.1
HEAVY_VIEWER_DAYS = 7
HEAVY_VIEWER_EXTRA_CARDS = 5

# A/B tests (simulator/experiments.py): the treatment of nba-reasons-text multiplies the hidden acceptance
# probability by 1 + lift, so the acceptance rate's true relative lift is exactly that; booking-flow-v2's
# treatment never sends its exposure from Android (a sample-ratio mismatch); nothing else has an effect.
EXPERIMENT_LIFT = {"nba-reasons-text": {"rec_acceptance_rate": 0.30}}
SRM_EXPERIMENT = "booking-flow-v2"

# Which home-screen card a click goes to, by app and region (rows: north, south, east, west; columns: the
# cards of apps.CUSTOMER_CARDS / apps.TECH_CARDS): customers in the north open vehicle health far more than
# others, technicians in the east go for parts. ui_layouts should learn it.
_CUSTOMER_BASE = (6, 4, 3, 2, 1, 3, 3)
_TECH_BASE = (6, 3, 2, 3, 2, 1)
HOME_CARD_WEIGHTS = {
    1: tuple(tuple(w * (5 if (r == 0 and c == 1) else 1) for c, w in enumerate(_CUSTOMER_BASE)) for r in range(4)),
    0: tuple(tuple(w * (5 if (r == 2 and c == 2) else 1) for c, w in enumerate(_TECH_BASE)) for r in range(4)),
}

# Parts a completed job uses (simulator/parts.py): a service's own catalog parts by their position in the
# catalog, a battery for a vehicle whose battery is failing whatever the job, and brake pads for old
# vehicles on inspection jobs; an electric vehicle uses no oil-change parts.
PART_USE = {
    "own_part_by_position": (0.9, 0.55, 0.3, 0.15),
    "battery_when_failing": 0.7,            # voltage under 12.1 V on the job's day
    "failing_battery_volts": 12.1,
    "brake_pads_on_inspection_age_8_plus": 0.45,
    "old_vehicle_years": 8,
    "electric_oil_change_factor": 0.1,
}


@dataclass(frozen=True)
class CrashGroup:
    app: int  # world.TECH / world.CUSTOMER
    exception_type: str
    value: str
    module: str
    function: str
    base_rate: float                       # crashes per session
    release_factor: tuple[float, ...]      # per release index
    library_frames: tuple[tuple[str, str, str], ...]  # (module, function, abs_path), after the crashing frame

    @property
    def frame(self) -> str:
        return f"{self.module}.{self.function}"

    @property
    def key(self) -> str:
        return f"{self.exception_type}|{self.frame}"


CRASH_GROUPS = (
    CrashGroup(0, "IndexError", "list index out of range", "tech_app.checklist.view", "render", 0.006,
               (1.0, 1.1, 1.0, 0.9), (("tech_app_vendor.listview", "item_at", "/app/vendor/listview.py"),)),
    CrashGroup(0, "KeyError", "'{job_id}'", "tech_app.jobs.repository", "load", 0.004,
               (1.0, 1.0, 0.3, 0.3), (("sqlite3.dbapi2", "fetchone", "/usr/lib/python3.11/sqlite3/dbapi2.py"),)),
    CrashGroup(0, "ValueError", "invalid literal for int() with base 10: ''", "tech_app.parts.order", "order", 0.003,
               (1.0, 1.0, 1.0, 1.0), (("decimal", "__new__", "/usr/lib/python3.11/decimal.py"),)),
    CrashGroup(1, "ZeroDivisionError", "division by zero", "customer_app.estimates.approve", "approve", 0.002,
               (1.0, 1.0, 1.0, 1.0), ()),
    CrashGroup(1, "TimeoutError", "timed out", "customer_app.sync.client", "sync", 0.003,
               (1.0, 0.8, 0.8, 0.8), (("urllib3.connectionpool", "urlopen", "/app/site-packages/urllib3/connectionpool.py"),
                                        ("socket", "create_connection", "/usr/lib/python3.11/socket.py"))),
    CrashGroup(1, "AttributeError", "'NoneType' object has no attribute 'vin'", "customer_app.vehicles.detail", "load_vehicle",
               0.0015, (1.0, 1.0, 1.0, 3.0), ()),
)

# The crash spike: a bad remote-config push at SPIKE_BURST_START_HOUR (UTC) on the spike day breaks this group's
# screen in this release until it is rolled back SPIKE_BURST_MINUTES later. A session of the release that ends
# inside the burst crashes in this group with SPIKE_BURST_CRASH_PROBABILITY (instead of the base rate), and the
# user relaunches at once into the same screen, so its report arrives within a minute or two (not at some later
# launch). Outside the burst the group crashes at its usual rate. The burst is what a 15-minute window sees.
SPIKE_GROUP = 0
SPIKE_RELEASE = 2  # 3.4.1
SPIKE_BURST_START_HOUR = 15.5
SPIKE_BURST_MINUTES = 60
SPIKE_BURST_CRASH_PROBABILITY = 0.8
SPIKE_BURST_REPORT_DELAY_SECONDS = (20, 120)  # a relaunch after the crash sends its report

# The latency regression: client spans of this route in this release take this many times longer.
REGRESSION_ROUTE = 3  # index into otlp.ROUTES: POST /v1/jobs/{id}/complete
REGRESSION_RELEASE = 3  # 3.5.0
REGRESSION_MULTIPLIER = 2.5

# Delivery.
DUPLICATE_SHARE = 0.015        # events delivered twice with the same messageId
DUPLICATE_NEXT_DAY_SHARE = 0.10  # of the copies, land in the next day's folder
DUPLICATE_OTHER_FILE_SHARE = 0.30  # of the copies, land at a random place of the same day (usually another file)
OFFLINE_SESSION_SHARE = 0.03   # sessions whose events are queued offline and sent hours later
TRACE_SAMPLE_RATE = 0.5        # head sampling of API calls that produce traces
