"""Segment Spec events as the Segment S3 destination (or RudderStack) stores them.

Delivery: the SDK stamps `timestamp` with the device clock, batches and sends (`sentAt`, device
clock), the collector stamps `receivedAt` (true time). Sessions queued offline are sent hours
later. Devices with a wrong clock shift both device stamps by the same offset, so
receivedAt - (sentAt - timestamp) recovers the true time (within the network latency, < 1 s).

Rendering: one JSON object per line with the key order and formatting of the SDK samples
(`json.dumps` defaults), built in bulk with polars string expressions rather than per-event dicts.
Devices with the Segment library (2.4.0) put identify traits top-level and send `integrations: {}`;
RudderStack devices (2.1.9) put traits in context.traits, send `integrations: {"All": true}` and a
`channel`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import polars as pl

from . import ids
from .apps import (
    CARDS,
    EVENTS,
    FEATURE_REQUESTS,
    IDENTIFY,
    LOGIN_FAIL_REASONS,
    PARTNERS,
    PLACEMENTS,
    REC_ACTIONS,
    SCREEN,
    SCREENS,
    DayActivity,
    E,
)
from .experiments import EXPOSED_ON_RECOMMENDATION, Experiments
from .jobs import Jobs, job_ids
from .recommendations import LOGGED_POLICY, LOGGED_PROPENSITY
from .world import (
    APPS,
    CARRIERS,
    DEVICE_MODELS,
    HOUR_US,
    LIBRARY_VERSIONS,
    LOCALES,
    OS_NAMES,
    OS_VERSIONS,
    PLATFORMS,
    REGION_TIMEZONES,
    REGIONS,
    RELEASES,
    RUDDER_LIB,
    US,
    World,
    job_type,
)

OFFLINE_DELAY_MEDIAN_H = 5.0
OFFLINE_DELAY_RANGE_H = (1.0, 72.0)
MAX_NETWORK_LATENCY_S = 0.9


@dataclass
class DeliveredEvents:
    """The day's events that reach the collector before the run ends, in day-activity order."""
    index: np.ndarray         # into the day's event arrays
    gid: np.ndarray           # run-wide event number (the key truth uses for an event)
    true_us: np.ndarray
    device_ts_us: np.ndarray  # `timestamp`
    device_sent_us: np.ndarray  # `sentAt`
    received_us: np.ndarray   # `receivedAt`
    offline: np.ndarray       # queued offline: a late event
    skew_us: np.ndarray


def deliver(world: World, act: DayActivity, first_gid: int) -> DeliveredEvents:
    rng = ids.rng_for(world.seed, ids.DAY_DELIVERY, act.day)
    ns, ne = act.n_sessions, len(act.event_us)
    offline_s = act.session_offline
    delay_s = np.clip(rng.lognormal(np.log(OFFLINE_DELAY_MEDIAN_H), 0.9, ns), *OFFLINE_DELAY_RANGE_H)
    flush_s = act.session_end_us + (delay_s * HOUR_US).astype(np.int64)
    sess = act.event_session
    offline = offline_s[sess]
    sent = np.where(offline, flush_s[sess] + (rng.uniform(0, 2, ne) * US).astype(np.int64),
                    act.event_us + (rng.uniform(0.2, 20, ne) * US).astype(np.int64))
    latency = (np.minimum(rng.lognormal(np.log(0.12), 0.6, ne), MAX_NETWORK_LATENCY_S) * US).astype(np.int64)
    received = sent + latency
    skew = world.device_skew_us[act.session_device[sess]]
    keep = np.flatnonzero(received < world.end_us)
    return DeliveredEvents(
        index=keep, gid=first_gid + keep, true_us=act.event_us[keep], device_ts_us=(act.event_us + skew)[keep],
        device_sent_us=(sent + skew)[keep], received_us=received[keep], offline=offline[keep], skew_us=skew[keep],
    )


def _lookup(values, idx: np.ndarray) -> pl.Series:
    """Strings by index from a small table; -1 gives ""."""
    table = pl.Series(list(values) + [""])
    return table.gather(np.where(idx < 0, len(values), idx))


def _timestamps(us: np.ndarray, fmt: str) -> pl.Series:
    return pl.Series(us).cast(pl.Datetime("us", "UTC")).dt.strftime(fmt)


ISO_BARE = "%Y-%m-%dT%H:%M:%S%.6f"  # the templates add "+00:00" or "Z"


class SegmentRenderer:
    """Pre-renders what is fixed per device, user, app release and job; renders a day's events."""

    def __init__(self, world: World, jobs: Jobs, experiments: Experiments):
        self.world = world
        self.experiments = experiments
        nd = len(world.device_user)
        models = [DEVICE_MODELS[m] for m in world.device_model]
        platform = world.user_platform[world.device_user]
        dev_ids = ids.decode(world.device_id)
        self.device_id = pl.Series(dev_ids)
        self.device_part = pl.Series([
            f'"device": {{"id": "{dev_ids[d]}", "model": "{models[d][0]}", "manufacturer": "{models[d][1]}", '
            f'"type": "{PLATFORMS[platform[d]]}"}}, "os": {{"name": "{OS_NAMES[platform[d]]}", '
            f'"version": "{OS_VERSIONS[platform[d]][world.device_os_version[d]]}"}}, '
            for d in range(nd)
        ])
        self.library_tail = pl.Series([
            f'"library": {{"name": "analytics-python", "version": "{v}"}}}}' for v in LIBRARY_VERSIONS
        ])
        self.app_part = pl.Series([
            f'{{"app": {{"name": "{app.display_name}", "version": "{r.version}", "build": "{r.build}", "namespace": "{app.app_id}"}}, '
            for app in APPS for r in RELEASES
        ])
        self.network_part = pl.Series([
            f'"network": {{"wifi": {"true" if wifi else "false"}, "carrier": "{c}"}}, ' for wifi in (0, 1) for c in CARRIERS
        ])
        nu = len(world.user_id)
        self.user_id = pl.Series(world.user_id)
        self.user_part = pl.Series([
            f'"locale": "{LOCALES[world.user_locale[u]]}", "timezone": "{REGION_TIMEZONES[world.user_region[u]]}", '
            for u in range(nu)
        ])
        self.traits = pl.Series([
            json.dumps({"role": APPS[world.user_app[u]].role, "region": REGIONS[world.user_region[u]]}) for u in range(nu)
        ])
        self.job_id = pl.Series(job_ids(np.arange(len(jobs))) + [""])
        self.estimate_id = pl.Series([f"est_{i + 1:07d}" for i in range(len(jobs))] + [""])
        self.job_type = pl.Series([job_type(s) for s in jobs.service] + [""])
        amounts = np.nan_to_num(jobs.estimate_amount, nan=0.0)
        self.estimate_amount = pl.Series(np.append(amounts, 0.0)).cast(pl.String)
        self.n_jobs = len(jobs)
        # Recommendations are about the customer's primary vehicle (its first), as in recommendations.py.
        primary = {}
        for v, c in enumerate(world.vehicle_customer):
            primary.setdefault(int(c), world.vin[v])
        self.primary_vin = pl.Series([primary.get(u, "") for u in range(nu)])

    def _session_frame(self, act: DayActivity, dev: np.ndarray, lib: np.ndarray) -> pl.DataFrame:
        frame = pl.DataFrame({
            "app": self.app_part.gather(act.session_app.astype(np.int64) * len(RELEASES) + act.session_version),
            "dev": self.device_part.gather(dev),
            "usr": self.user_part.gather(act.session_user),
            "net": self.network_part.gather(act.session_wifi.astype(np.int64) * len(CARRIERS) + self.world.device_carrier[dev]),
            "sid": ids.to_series(act.session_uuid),
        })
        return pl.DataFrame({
            "ctx_head": frame.select(pl.concat_str([
                pl.col("app"), pl.col("dev"), pl.col("usr"), pl.col("net"), pl.lit('"sessionId": "'), pl.col("sid"), pl.lit('", '),
            ])).to_series(),
            "lib_tail": self.library_tail.gather(lib),
            "is_rudder": pl.Series(lib == RUDDER_LIB),
            "traits": self.traits.gather(act.session_user),
            "user_id": self.user_id.gather(act.session_user),
            "anonymous_id": self.device_id.gather(dev),
        })

    def _experiment_json(self, kind: np.ndarray, a: np.ndarray, c: np.ndarray) -> tuple[pl.Series, pl.Series]:
        """experiment key and variation key as JSON values ("null" outside an experiment): "Experiment Viewed"
        names its experiment in event_a; recommendation events belong to the reasons experiment."""
        exps = self.experiments
        width = max(len(v) for v in exps.variation_keys)
        experiment = np.where(kind == E["Experiment Viewed"], a,
                              np.where(_is_rec(kind), exps.index(EXPOSED_ON_RECOMMENDATION), -1))
        experiment = np.where(c >= 0, experiment, -1).astype(np.int64)
        keys = pl.Series([json.dumps(k) for k in exps.keys] + ["null"])
        flat = [json.dumps(v[j]) if j < len(v) else "null" for v in exps.variation_keys for j in range(width)] + ["null"]
        variation = np.where(experiment >= 0, experiment * width + np.maximum(c, 0), len(flat) - 1)
        return (keys.gather(np.where(experiment >= 0, experiment, len(exps.keys))), pl.Series(flat).gather(variation))

    def render(self, act: DayActivity, dl: DeliveredEvents) -> pl.DataFrame:
        """One JSON line per delivered event (without the newline), and its messageId."""
        n = len(dl.index)
        if n == 0:
            return pl.DataFrame({"line": [], "mid": []}, schema={"line": pl.String, "mid": pl.String})
        sessions = self._session_frame(act, act.session_device, self.world.device_library[act.session_device])
        sess = act.event_session[dl.index]
        kind = act.event_kind[dl.index]
        a, b, c = act.event_a[dl.index], act.event_b[dl.index], act.event_c[dl.index]
        job = act.event_job[dl.index]
        job_idx = np.where(job < 0, self.n_jobs, job)
        mid = ids.uuid_ids(ids.rng_for(self.world.seed, ids.DAY_IDS, act.day, 1), len(act.event_us))[dl.index]
        is_seg_ms = ~sessions["is_rudder"].to_numpy()[sess]
        ts_us = np.where(is_seg_ms, dl.device_ts_us // 1000 * 1000, dl.device_ts_us)

        exp_json, var_json = self._experiment_json(kind, a, c)
        ts = _timestamps(ts_us, ISO_BARE)
        df = sessions.select(pl.all().gather(sess)).with_columns(
            kind=pl.Series(kind),
            event=_lookup(EVENTS, kind.astype(np.int64)),
            screen=_lookup(SCREENS, np.where(kind == SCREEN, a, -1).astype(np.int64)),
            screen_from=_lookup(_snake(SCREENS) + ["launch"],
                                np.where(kind == SCREEN, np.where(b < 0, len(SCREENS), b), -1).astype(np.int64)),
            reason=_lookup(LOGIN_FAIL_REASONS, np.where(kind == E["login_failed"], a, -1).astype(np.int64)),
            placement=_lookup(PLACEMENTS, np.where(_is_rec(kind), a, -1).astype(np.int64)),
            action=_lookup(REC_ACTIONS, np.where(_is_rec(kind), b, -1).astype(np.int64)),
            partner=_lookup(PARTNERS, np.where(np.isin(kind, _PARTNER_KINDS), a, -1).astype(np.int64)),
            card=_lookup(CARDS, np.where(kind == E["home_card_clicked"], a, -1).astype(np.int64)),
            text=_lookup([json.dumps(t) for t in FEATURE_REQUESTS], np.where(kind == E["feature_request_submitted"], a, -1).astype(np.int64)),
            experiment_json=exp_json, variation_json=var_json,
            num_b=pl.Series(b.astype(np.int64)).cast(pl.String),
            session_gid=pl.Series(act.session_gid[sess].astype(np.int64)).cast(pl.String),
            num_c=pl.Series(c.astype(np.int64)).cast(pl.String),
            job_id=self.job_id.gather(job_idx),
            vin=self.primary_vin.gather(act.session_user[sess]),
            job_type=self.job_type.gather(job_idx),
            estimate_id=self.estimate_id.gather(job_idx),
            amount=self.estimate_amount.gather(job_idx),
            mid=ids.to_series(mid),
            ts=ts,
            ts_ms=ts.str.slice(0, 23),  # Segment's SDK keeps milliseconds
            sent=_timestamps(dl.device_sent_us, ISO_BARE),
            recv=_timestamps(dl.received_us, ISO_BARE),
        )
        # Render each kind of line with its own template on its own rows (a when/then chain would
        # evaluate every branch on every row), then put the rows back in order.
        df = df.with_columns(properties=_by_group(df, kind, _PROPERTY_TEMPLATES, "{}"))
        rudder = sessions["is_rudder"].to_numpy()[sess]
        group = np.where(kind == IDENTIFY, 0, np.where(kind == SCREEN, 1, 2)) * 2 + rudder
        lines = _by_group(df, group, [((g,), _line_template(g // 2, bool(g % 2))) for g in range(6)], None)
        return pl.DataFrame({"line": lines, "mid": df["mid"]})


def _by_group(df: pl.DataFrame, key: np.ndarray, templates, default: str | None) -> pl.Series:
    """Evaluate each template on the rows whose key it lists; other rows get `default`."""
    idx_parts, value_parts = [], []
    covered = np.zeros(len(df), dtype=bool)
    for keys, expr in templates:
        idx = np.flatnonzero(np.isin(key, keys))
        if len(idx):
            covered[idx] = True
            idx_parts.append(idx)
            value = df.select(pl.all().gather(idx)).select(expr.alias("v")).to_series()
            if len(value) != len(idx):  # a literal template gives one value
                value = pl.Series("v", [value[0]] * len(idx), dtype=pl.String)
            value_parts.append(value)
    rest = np.flatnonzero(~covered)
    if len(rest):
        if default is None:
            raise ValueError("rows without a template")
        idx_parts.append(rest)
        value_parts.append(pl.Series("v", [default] * len(rest), dtype=pl.String))
    return pl.DataFrame({"i": np.concatenate(idx_parts), "v": pl.concat(value_parts)}).sort("i")["v"]


def _snake(names):
    out = []
    for name in names:
        s_ = "".join("_" + ch.lower() if ch.isupper() and i else ch.lower() for i, ch in enumerate(name))
        out.append(s_)
    return out


_PARTNER_KINDS = np.array([E["partner_widget_opened"], E["partner_slot_chosen"], E["booking_created"]])


def _is_rec(kind: np.ndarray) -> np.ndarray:
    return (kind == E["recommendation_shown"]) | (kind == E["recommendation_clicked"]) | (kind == E["recommendation_accepted"])


def _property_templates() -> list:
    lit, col = pl.lit, pl.col
    job = pl.concat_str([lit('{"job_id": "'), col("job_id"), lit('", "job_type": "'), col("job_type"), lit('"}')])
    estimate = pl.concat_str([lit('{"estimate_id": "'), col("estimate_id"), lit('", "job_id": "'), col("job_id"),
                              lit('", "amount": '), col("amount"), lit(', "currency": "USD"}')])
    rec = pl.concat_str([lit('{"placement": "'), col("placement"), lit('", "action_id": "'), col("action"),
                         lit('", "vin": "'), col("vin"),
                         lit('", "model_version": "7", "experiment_key": '), col("experiment_json"),
                         lit(', "variation_id": '), col("variation_json"),
                         lit(f', "policy": {json.dumps(LOGGED_POLICY)}, "propensity_logged": {json.dumps(LOGGED_PROPENSITY)}}}')])

    booking = pl.concat_str([lit('{"partner_id": "'), col("partner"), lit('", "booking_id": "bk_'), col("session_gid"), lit('"}')])

    def kinds(*names):
        return tuple(E[nm] for nm in names)

    return [
        ((SCREEN,), pl.concat_str([lit('{"from": "'), col("screen_from"), lit('"}')])),
        (kinds("job_assigned", "job_started", "checklist_completed", "job_completed"), job),
        (kinds("estimate_sent", "estimate_viewed", "estimate_approved", "payment_completed"), estimate),
        (kinds("recommendation_shown", "recommendation_clicked", "recommendation_accepted"), rec),
        (kinds("Experiment Viewed"), pl.concat_str([lit('{"experiment_id": '), col("experiment_json"),
                                                    lit(', "variation_id": '), col("variation_json"), lit("}")])),
        (kinds("login_failed"), pl.concat_str([lit('{"reason": "'), col("reason"), lit('"}')])),
        # booking_id is "bk_<session gid>" (apps.booking_id): the partner records and ops extracts carry it too.
        (kinds("booking_created"), booking),
        # A slot chosen in a session that went on to book names the booking (event_b = 1); otherwise only the partner.
        (kinds("partner_slot_chosen"), pl.when(col("num_b") == "1").then(booking).otherwise(
            pl.concat_str([lit('{"partner_id": "'), col("partner"), lit('"}')]))),
        (kinds("partner_widget_opened"), pl.concat_str([lit('{"partner_id": "'), col("partner"), lit('"}')])),
        (kinds("home_card_clicked"), pl.concat_str([lit('{"card_id": "'), col("card"), lit('"}')])),
        # NPS in a session's tail; CSAT about a job (the rating push).
        (kinds("survey_shown"), pl.when(col("job_id") == "").then(lit('{"survey_type": "nps"}')).otherwise(
            pl.concat_str([lit('{"survey_type": "csat", "job_id": "'), col("job_id"), lit('", "job_type": "'), col("job_type"), lit('"}')]))),
        (kinds("survey_responded"), pl.when(col("job_id") == "").then(
            pl.concat_str([lit('{"survey_type": "nps", "score": '), col("num_c"), lit("}")])).otherwise(
            pl.concat_str([lit('{"survey_type": "csat", "job_id": "'), col("job_id"), lit('", "job_type": "'), col("job_type"),
                           lit('", "score": '), col("num_c"), lit("}")]))),
        (kinds("feature_request_submitted"), pl.concat_str([lit('{"text": '), col("text"), lit("}")])),
    ]


_PROPERTY_TEMPLATES = _property_templates()


def _line_template(group: int, rudder: bool) -> pl.Expr:
    """The line for identify (0), screen (1) or track (2) events of one library, in the SDK's key order."""
    lit, col = pl.lit, pl.col
    parts = [lit('{"integrations": {"All": true}, "anonymousId": "' if rudder else '{"integrations": {}, "anonymousId": "'),
             col("anonymous_id"), lit('", ')]
    if group != 0:
        parts += [lit('"properties": '), col("properties"), lit(", ")]
    parts += [lit('"timestamp": "'), col("ts") if rudder else col("ts_ms"), lit('+00:00", ')]
    if group == 1:
        parts += [lit('"category": null, ')]
    parts += [lit('"context": '), col("ctx_head")]
    if group == 0 and rudder:
        parts += [lit('"traits": '), col("traits"), lit(", ")]
    parts += [col("lib_tail"), lit(", ")]
    if group == 0:
        parts += [lit('"type": "identify", "userId": "'), col("user_id"), lit('", ')]
        if not rudder:
            parts += [lit('"traits": '), col("traits"), lit(", ")]
    elif group == 1:
        parts += [lit('"userId": "'), col("user_id"), lit('", "type": "screen", "name": "'), col("screen"), lit('", ')]
    else:
        parts += [lit('"userId": "'), col("user_id"), lit('", "type": "track", "event": "'), col("event"), lit('", ')]
    parts += [lit('"messageId": "'), col("mid"), lit('", ')]
    if rudder:
        parts += [lit('"channel": "server", ')]
    parts += [lit('"sentAt": "'), col("sent"), lit('+00:00", "receivedAt": "'), col("recv"), lit('Z"}')]
    return pl.concat_str(parts)
