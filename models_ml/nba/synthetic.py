"""A synthetic candidate frame with a planted logistic propensity, for tests and benchmarks.

It follows the feature mart's contract (keys, ``label``, ``rules_score``, ``action_value``, features) so
the model code can be exercised without the warehouse. ``true_propensity`` is the planted probability
the labels were drawn from, so a test can compare the model's AUC with the truth's own AUC.
"""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import polars as pl

ACTIONS = (  # action_id, kind, value
    ("oil_change", "maintenance_reminder", 60.0),
    ("brake_service", "upsell", 180.0),
    ("tire_rotation", "upsell", 40.0),
    ("battery_replacement", "upsell", 150.0),
    ("detailing", "upsell", 90.0),
    ("wiper_blades", "upsell", 25.0),
    ("brake_pads_part", "parts", 70.0),
    ("cabin_filter", "maintenance_reminder", 30.0),
)
REGIONS = ("north", "south", "east", "west", "central")

SPEC = (
    ("oil_life_pct", "numeric"),
    ("km_since_last_service_of_kind", "numeric"),
    ("battery_voltage_trend_7d", "numeric"),
    ("dtc_family_battery", "numeric"),
    ("visits_365d", "numeric"),
    ("spend_365d", "numeric"),
    ("days_since_last_visit", "numeric"),
    ("declined_same_action_90d", "numeric"),
    ("accepted_same_kind_90d", "numeric"),
    ("region", "categorical"),
    ("platform", "categorical"),
    ("placement", "categorical"),
    ("action_id", "categorical"),
    ("action_kind", "categorical"),
)

TEMPLATES = {
    "oil_life_pct": "oil life {value:.0f}%",
    "km_since_last_service_of_kind": "{value:,.0f} km since this service was last done",
    "battery_voltage_trend_7d": "battery voltage trend {value:+.2f} V over 7 days",
    "dtc_family_battery": "battery fault code active",
    "visits_365d": "{value:.0f} visits in the last year",
    "spend_365d": "spent {value:,.0f} in the last year",
    "days_since_last_visit": "last visit {value:.0f} days ago",
    "declined_same_action_90d": "declined {value:.0f} times recently",
    "accepted_same_kind_90d": "accepted {value:.0f} similar offers recently",
    "region": "region {value}",
    "platform": "{value} app",
    "placement": "shown on {value}",
    "action_id": "popular: {value}",
    "action_kind": "{value}",
}


def planted_logit(a: np.ndarray, oil: np.ndarray, km: np.ndarray, volt: np.ndarray, dtc: np.ndarray,
                  visits: np.ndarray, declined: np.ndarray, accepted_kind: np.ndarray, region: np.ndarray) -> np.ndarray:
    base = np.array([-2.2, -2.6, -2.4, -3.0, -2.8, -2.5, -2.7, -2.9])[a]
    logit = base + 0.25 * np.sqrt(visits) - 0.9 * declined + 0.4 * accepted_kind + 0.15 * (region == 0)
    logit += np.where(a == 0, 3.0 - 0.09 * oil, 0.0)                       # oil change: low oil life
    logit += np.where((a == 1) | (a == 6), (km - 9000.0) / 3500.0, 0.0)    # brakes: km since brake service
    logit += np.where(a == 2, (km - 7000.0) / 4000.0, 0.0)                 # tires
    logit += np.where(a == 3, -14.0 * volt + 2.2 * dtc, 0.0)               # battery: falling voltage, DTC
    logit += np.where(a == 7, (km - 12000.0) / 6000.0, 0.0)
    return logit


def synthetic_candidates(n_users: int = 1500, n_days: int = 56, seed: int = 0, session_rate: float = 0.3,
                         actions_per_session: int = 4, start: date = date(2025, 1, 6),
                         with_labels: bool = True) -> pl.DataFrame:
    """Candidate rows: ``session_rate`` of user-days show ``actions_per_session`` distinct actions.

    For a scoring frame (every user × every action, one day) use ``n_days=1, session_rate=1,
    actions_per_session=len(ACTIONS), with_labels=False``.
    """
    rng = np.random.default_rng(seed)
    n_actions = len(ACTIONS)
    # users: stable attributes
    u_region = rng.integers(0, len(REGIONS), n_users)
    u_ios = rng.random(n_users) < 0.55
    u_visits = rng.poisson(2.0, n_users).astype(np.float64)
    u_spend = np.round(u_visits * rng.gamma(2.0, 120.0, n_users), 2)
    # sessions (user-days) and the actions shown in each
    user_day = np.flatnonzero(rng.random(n_users * n_days) < session_rate)
    s_user, s_day = user_day // n_days, user_day % n_days
    m = min(actions_per_session, n_actions)
    shown = np.argsort(rng.random((len(user_day), n_actions)), axis=1)[:, :m]
    n = shown.size
    user = np.repeat(s_user, m)
    day = np.repeat(s_day, m)
    a = shown.ravel()
    # per-candidate telemetry and history
    oil = np.round(rng.uniform(0, 100, n), 1)
    km = np.round(rng.gamma(2.0, 4500.0, n))
    volt = np.round(rng.normal(0.0, 0.08, n), 3)
    dtc = (rng.random(n) < 0.08).astype(np.float64)
    days_since = rng.integers(0, 365, n).astype(np.float64)
    declined = rng.poisson(0.3, n).astype(np.float64)
    accepted_kind = rng.poisson(0.2, n).astype(np.float64)
    region = u_region[user]
    logit = planted_logit(a, oil, km, volt, dtc, u_visits[user], declined, accepted_kind, region)
    p = 1.0 / (1.0 + np.exp(-logit))
    values = np.array([v for _, _, v in ACTIONS])
    # rules-only ordering: catalog priority by value, bumped by two hard thresholds
    rules = values[a] / 100.0 + 1.0 * ((a == 0) & (oil < 15)) + 1.0 * ((a == 3) & (dtc > 0))
    action_ids = np.array([x for x, _, _ in ACTIONS])
    kinds = np.array([k for _, k, _ in ACTIONS])
    placement = np.where(rng.random(len(user_day)) < 0.7, "home_card", "post_job")
    dates = pl.Series([start + timedelta(days=d) for d in range(n_days)], dtype=pl.Date)
    frame = pl.DataFrame({
        "user_id": np.char.add("u", user.astype(str)),
        "action_id": action_ids[a],
        "as_of_date": dates.gather(day),
        "placement": np.repeat(placement, m),
        "rules_score": rules,
        "action_value": values[a],
        "oil_life_pct": oil,
        "km_since_last_service_of_kind": km,
        "battery_voltage_trend_7d": volt,
        "dtc_family_battery": dtc,
        "visits_365d": u_visits[user],
        "spend_365d": u_spend[user],
        "days_since_last_visit": days_since,
        "declined_same_action_90d": declined,
        "accepted_same_kind_90d": accepted_kind,
        "region": np.array(REGIONS)[region],
        "platform": np.where(u_ios[user], "ios", "android"),
        "action_kind": kinds[a],
        "true_propensity": p,
    })
    if with_labels:
        frame = frame.with_columns(
            pl.Series("label", (rng.random(n) < p).astype(np.int8)),
            pl.format("e{}", pl.int_range(pl.len())).alias("exposure_id"),
        )
    return frame
