"""The hidden truth behind recommendation outcomes: whether a customer accepts an action shown in the app.

Each customer's recommendations are about their primary vehicle (the first one registered). The apps'
logging policy shows a uniformly random action in a random placement (so the logged data is unbiased);
acceptance then follows a hidden propensity that depends on the vehicle's condition (what telemetry shows,
when the vehicle is connected), its age, the customer's segment, the placement and the customer's history
with that action. truth.json reports the propensity's own AUC on the exposures (the best any model can do)
and the realized acceptance, so tests know what a model should recover.
"""
from __future__ import annotations

import numpy as np

from . import planted
from .world import World

REC_ACTIONS = ("battery_replacement", "tire_rotation", "brake_service", "wiper_blades", "cabin_filter", "oil_change")
PLACEMENTS = ("home_card", "post_job", "service_history")
# What the apps log with each recommendation event: the logging policy is pure exploration, so each action is
# shown with probability 1 / number of actions (properties.policy, properties.propensity_logged).
LOGGED_POLICY = "explore"
LOGGED_PROPENSITY = 1 / len(REC_ACTIONS)
A = {name: i for i, name in enumerate(REC_ACTIONS)}
RAINY_REGIONS = (0, 3)  # north, west (world.REGIONS)


def _customer_hash(customer: np.ndarray) -> np.ndarray:
    """A multiplicative hash of the customer index (Knuth's golden-ratio constant), free of the random streams."""
    return (np.asarray(customer, dtype=np.uint64) + np.uint64(7)) * np.uint64(0x9E3779B97F4A7C15)


def heavy_viewer(customer: np.ndarray) -> np.ndarray:
    """The planted heavy recommendation viewers: planted.HEAVY_VIEWER_SHARE of the customers."""
    return (_customer_hash(customer) >> np.uint64(40)).astype(np.float64) / float(1 << 24) < planted.HEAVY_VIEWER_SHARE


def heavy_viewer_action(customer: np.ndarray) -> np.ndarray:
    """The action whose card a heavy viewer keeps reopening (an index into REC_ACTIONS)."""
    return ((_customer_hash(customer) >> np.uint64(20)) % np.uint64(len(REC_ACTIONS))).astype(np.int64)


def heavy_viewer_days(days: int) -> range:
    """The days (from the world's start) on which heavy viewers see extra cards: the world's last week."""
    return range(max(days - planted.HEAVY_VIEWER_DAYS, 0), days)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class HiddenPropensity:
    """P(accept | shown) per exposure, and the memory of past outcomes it depends on."""

    def __init__(self, world: World, telemetry):
        self.w, self.tel = world, telemetry
        nc = world.n_customers
        # primary vehicle: the first vehicle of each customer (vehicles are numbered by customer)
        first = np.full(nc, -1, np.int64)
        order = np.arange(len(world.vehicle_customer))[::-1]
        first[world.vehicle_customer[order]] = order
        self.primary_vehicle = first
        start_year = np.datetime64(world.start_us, "us").astype("datetime64[Y]").astype(int) + 1970
        self.vehicle_age = np.maximum(start_year - world.vehicle_year, 0)
        self.accepted_day = np.full((nc, len(REC_ACTIONS)), -10_000, np.int64)
        self.declined_day = np.full((nc, len(REC_ACTIONS)), -10_000, np.int64)
        self.log: list[tuple[np.ndarray, ...]] = []   # (customer, action, placement, day, p, accepted)

    def probability(self, customer: np.ndarray, action: np.ndarray, placement: np.ndarray, day: int) -> np.ndarray:
        """The hidden P(accept | shown), from the vehicle's state at the start of `day` (what yesterday's
        telemetry showed)."""
        veh = self.primary_vehicle[customer]
        tel = self.tel
        oil_life = np.clip(100 - (tel.odometer[veh] - tel.oil_changed_at_km[veh]) / 100.0, 0, 100)
        battery = tel.battery[veh] - np.where(tel.weak_battery[veh], 0.01 * day, 0)
        min_tire = tel.tire_base[veh] - np.where(tel.leaking[veh] >= 0, tel.leak_kpa[veh], 0)
        electric = tel.electric[veh]
        age = self.vehicle_age[veh]
        fleet = self.w.customer_segment[customer] == 1
        p = planted.REC_PROPENSITY
        is_ = lambda name: action == A[name]  # noqa: E731
        logit = np.asarray(p["base"])[action]
        logit = logit + np.where(is_("battery_replacement"), p["battery_per_volt_below_12_45"] * (12.45 - battery), 0.0)
        logit = logit + np.where(is_("oil_change") & ~electric, p["oil_life_below_half"] * (0.5 - oil_life / 100), 0.0)
        logit = logit + np.where(is_("oil_change") & electric, p["electric_oil_change"], 0.0)
        logit = logit + np.where(is_("tire_rotation"), p["tire_per_kpa_below_232"] * (232 - min_tire), 0.0)
        logit = logit + np.where(is_("brake_service"), p["brakes_per_year_over_5"] * (age - 5), 0.0)
        rainy = np.isin(self.w.customer_region[customer], RAINY_REGIONS)
        logit = logit + np.where(is_("wiper_blades") & rainy, p["wipers_rainy_region"], 0.0)
        logit = logit + np.where(is_("cabin_filter"), p["cabin_filter_per_daily_km_over_40"] * (tel.daily_km[veh] - 40), 0.0)
        logit = logit + np.where(fleet, p["fleet"], 0.0)
        logit = logit + np.asarray(p["placement"])[placement]
        idx = (customer, action)
        logit = logit + np.where(day - self.accepted_day[idx] <= 90, p["accepted_same_action_90d"], 0.0)
        logit = logit + np.where(day - self.declined_day[idx] <= 30, p["declined_same_action_30d"], 0.0)
        return sigmoid(logit)

    def remember(self, customer, action, placement, day: int, prob, accepted) -> None:
        """Outcomes of one day's exposures (in time order within the day is not needed: the memory only
        affects later days)."""
        self.accepted_day[customer[accepted], action[accepted]] = day
        self.declined_day[customer[~accepted], action[~accepted]] = day
        self.log.append((customer, action, placement, np.full(len(customer), day), prob, accepted))

    def truth(self) -> dict:
        if not self.log:
            return {"exposures": 0}
        customer, action, placement, day, prob, accepted = (np.concatenate(c) for c in zip(*self.log))
        return {
            "exposures": int(len(prob)), "accepted": int(accepted.sum()),
            "acceptance_by_action": {a: round(float(accepted[action == i].mean()), 4) if (action == i).any() else None
                                     for i, a in enumerate(REC_ACTIONS)},
            "auc_of_hidden_propensity": round(auc(prob, accepted), 4),
            "mean_hidden_propensity": round(float(prob.mean()), 4),
            # E[P(accept) | action shown] under the logging policy: what an IPS / SNIPS estimate of each
            # action's acceptance from the logged exposures recovers (not rounded: tests compare with CIs)
            "mean_hidden_propensity_by_action": {
                a: float(prob[action == i].mean()) if (action == i).any() else None for i, a in enumerate(REC_ACTIONS)},
            "exposures_by_action": {a: int((action == i).sum()) for i, a in enumerate(REC_ACTIONS)},
            "logged_policy": LOGGED_POLICY, "logged_propensity": LOGGED_PROPENSITY,
            "heavy_viewers": {
                "customers": [self.w.customer_id[c] for c in np.flatnonzero(heavy_viewer(np.arange(self.w.n_customers)))],
                "days": [int(d) for d in heavy_viewer_days(self.w.days)],
                "action": {self.w.customer_id[c]: REC_ACTIONS[int(heavy_viewer_action(np.array([c]))[0])]
                           for c in np.flatnonzero(heavy_viewer(np.arange(self.w.n_customers)))},
                "extra_cards_per_session_shown": planted.HEAVY_VIEWER_EXTRA_CARDS,
                "note": "planted: in the world's last week these customers reopen one action's card several times "
                        "in every session that shows a recommendation, so the policy's weekly frequency cap binds "
                        "for those of them with eligible actions"},
            "planted": planted.REC_PROPENSITY,
            "note": "generated exposures (before delivery losses): the hidden propensity's own AUC against the drawn "
                    "acceptances is the best a model can reach; logging policy: uniform random action and placement",
        }


def auc(score: np.ndarray, label: np.ndarray) -> float:
    """Area under the ROC curve by the rank-sum (Mann-Whitney) formula, ties averaged."""
    from scipy.stats import rankdata

    label = np.asarray(label, bool)
    n_pos, n_neg = label.sum(), (~label).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(score)
    return float((ranks[label].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
