"""Recording what was planted and what actually landed, and writing truth.json.

Realized numbers are computed from what was written as good records (after losses: events not
yet received when the run ends, the lost tail of a truncated file), never from intentions, so a
pipeline that loads the landing zone correctly must find exactly these numbers.
"""
from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict

import numpy as np

from . import planted
from .apps import EVENTS, ROUTES, E, in_spike_burst, spike_burst_us
from .jobs import Jobs
from .world import (
    APPS,
    DAY_US,
    PLATFORMS,
    RELEASES,
    SKEW_HOURS_CHOICES,
    SKEWED_DEVICE_SHARE,
    US,
    World,
    job_type,
    release_name,
)

SKEW_SAMPLE_SIZE = 200


class _Grow:
    """A growable column indexed by a run-wide id."""

    def __init__(self, dtype, fill=0):
        self.a = np.full(1024, fill, dtype=dtype)
        self.fill = fill

    def ensure(self, size: int) -> None:
        if size > len(self.a):
            bigger = np.full(max(size, 2 * len(self.a)), self.fill, dtype=self.a.dtype)
            bigger[: len(self.a)] = self.a
            self.a = bigger

    def put(self, first: int, values: np.ndarray) -> None:
        self.ensure(first + len(values))
        self.a[first:first + len(values)] = values

    def view(self, n: int) -> np.ndarray:
        self.ensure(n)
        return self.a[:n]


def iso(us: int) -> str:
    return dt.datetime.fromtimestamp(us / US, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def day_name(world: World, day: int) -> str:
    return (dt.datetime.fromtimestamp(world.start_us / US, dt.UTC) + dt.timedelta(days=day)).strftime("%Y-%m-%d")


class TruthRecorder:
    def __init__(self, world: World, jobs: Jobs):
        self.w, self.j = world, jobs
        # events by gid
        self.n_events = 0
        self.ev_kind = _Grow(np.int8, -1)
        self.ev_session = _Grow(np.int64, -1)
        self.ev_job = _Grow(np.int64, -1)
        self.ev_us = _Grow(np.int64, -1)  # true time
        self.ev_c = _Grow(np.int16, -1)   # the event's number (survey scores)
        self.ev_skew = _Grow(np.int64, 0)
        self.ev_late = _Grow(bool, False)
        self.ev_later_dt = _Grow(bool, False)
        self.ev_good = _Grow(np.uint8, 0)
        # sessions by gid
        self.n_sessions = 0
        self.s_user = _Grow(np.int64, -1)
        self.s_app = _Grow(np.int8, -1)
        self.s_version = _Grow(np.int8, -1)
        self.s_platform = _Grow(np.int8, -1)
        # written good records and files per source
        self.records: dict[str, dict] = defaultdict(lambda: {"files": 0, "records_good": 0})
        self.skew_sample: list[dict] = []
        self.crashes: list[tuple[int, int, int, int]] = []  # (group, app, version, crash day)
        self.burst_crashes = 0  # crashes of the spike group and release inside the planted burst
        self.latency: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.trace_count = 0
        self.truncated_lost_lines = 0

    # --- recording -------------------------------------------------------------------------
    def sessions(self, first_gid: int, user, app, version, platform) -> None:
        self.s_user.put(first_gid, user)
        self.s_app.put(first_gid, app)
        self.s_version.put(first_gid, version)
        self.s_platform.put(first_gid, platform)
        self.n_sessions = max(self.n_sessions, first_gid + len(user))

    def events(self, gid, kind, session_gid, job, true_us, value, skew, late, later_dt, total_generated: int) -> None:
        """Metadata of delivered events (gids need not be contiguous; undelivered ones stay unset)."""
        for col, values in ((self.ev_kind, kind), (self.ev_session, session_gid), (self.ev_job, job), (self.ev_us, true_us),
                            (self.ev_c, value),
                            (self.ev_skew, skew), (self.ev_late, late), (self.ev_later_dt, later_dt)):
            if len(gid):
                tmp = np.full(gid[-1] - gid[0] + 1, col.fill, dtype=col.a.dtype)
                tmp[gid - gid[0]] = values
                col.put(int(gid[0]), tmp)
        self.n_events = max(self.n_events, total_generated)

    def good_lines(self, source: str, gids: np.ndarray | None, count: int) -> None:
        self.records[source]["records_good"] += count
        if gids is not None and len(gids):
            self.ev_good.ensure(int(gids.max()) + 1)
            np.add.at(self.ev_good.a, gids, 1)

    def file(self, source: str) -> None:
        self.records[source]["files"] += 1

    def skewed(self, mids: list[str], true_us: np.ndarray, skew_us: np.ndarray) -> None:
        for mid, t, s in zip(mids, true_us, skew_us):
            if len(self.skew_sample) >= SKEW_SAMPLE_SIZE:
                return
            self.skew_sample.append({"messageId": mid, "true_time": iso(int(t)), "offset_hours": int(s) / 3600 / US})

    def crash_lines(self, group, app, version, crash_us) -> None:
        day = (np.asarray(crash_us) - self.w.start_us) // DAY_US
        self.burst_crashes += int((in_spike_burst(self.w, np.asarray(app), np.asarray(version), np.asarray(crash_us))
                                   & (np.asarray(group) == planted.SPIKE_GROUP)).sum())
        self.crashes.extend(zip(np.asarray(group).tolist(), np.asarray(app).tolist(), np.asarray(version).tolist(), day.tolist()))

    def traces(self, route, version, app, duration_ns) -> None:
        self.latency.append((np.asarray(route), np.asarray(version), np.asarray(duration_ns)))
        self.trace_count += len(route)

    # --- results -----------------------------------------------------------------------------
    def _funnels(self) -> dict:
        n = self.n_events
        good = self.ev_good.view(n) > 0
        kind, sess, job = self.ev_kind.view(n), self.ev_session.view(n), self.ev_job.view(n)
        ns = self.n_sessions
        s_user, s_platform, s_app = self.s_user.view(ns), self.s_platform.view(ns), self.s_app.view(ns)

        def has(kind_name, index, size):
            flag = np.zeros(size, dtype=bool)
            sel = good & (kind == E[kind_name]) & (index >= 0)
            flag[index[sel]] = True
            return flag

        # Login, per user-day: the user's first session of the UTC day (by its earliest clean app_opened)
        # holding app_opened, then login_started, then login_succeeded (always in this order in a session).
        s_start, s_ok = has("login_started", sess, ns), has("login_succeeded", sess, ns)
        s_fail = has("login_failed", sess, ns)
        opened = np.flatnonzero(good & (kind == E["app_opened"]) & (sess >= 0))
        o_sess, o_us = sess[opened], self.ev_us.view(n)[opened]
        o_user, o_day = s_user[o_sess], o_us // DAY_US
        order = np.lexsort((o_us, o_day, o_user))
        o_user, o_day, o_sess = o_user[order], o_day[order], o_sess[order]
        head = np.ones(len(order), dtype=bool)
        head[1:] = (o_user[1:] != o_user[:-1]) | (o_day[1:] != o_day[:-1])
        entry = o_sess[head]  # one session per user-day
        chain = [np.ones(len(entry), dtype=bool), s_start[entry], s_start[entry] & s_ok[entry]]
        e_platform, e_app = s_platform[entry], s_app[entry]
        login = {"unit": "user_day", "steps": list(planted.LOGIN_STEPS),
                 "definition": "user-days (UTC) whose first session, by its earliest clean app_opened, holds app_opened, then "
                               "login_started, then login_succeeded; distinct clean events",
                 "planted_step_probabilities": {p: [1.0, planted.P_LOGIN_STARTED[i], planted.P_LOGIN_SUCCEEDED[i]] for i, p in enumerate(PLATFORMS)},
                 "planted_note": "the sign-in token lasts until the end of the UTC day: the first session of a user-day asks for a "
                                 "sign-in with P(login_started | app_opened); P(login_succeeded | login_started) on the first try "
                                 "(a job session retries after a failure and gets in, a browse session ends)",
                 "realized": {}, "realized_by_app": {}, "user_days_with_login_failed": {}}
        for pi, p in enumerate(PLATFORMS):
            login["realized"][p] = [int((step & (e_platform == pi)).sum()) for step in chain]
            login["user_days_with_login_failed"][p] = int((s_fail[entry] & (e_platform == pi)).sum())
            for ai, app in enumerate(APPS):
                login["realized_by_app"].setdefault(app.app_id, {})[p] = [
                    int((step & (e_platform == pi) & (e_app == ai)).sum()) for step in chain]

        nj = len(self.j)
        tech_platform = self.w.user_platform[self.w.n_customers + self.j.technician]
        cust_platform = self.w.user_platform[self.j.customer]

        def job_funnel(steps, platform, probs, unit_note):
            flags = [has(k, job, nj) for k in steps]
            reach = np.ones(nj, dtype=bool)
            realized = {p: [] for p in PLATFORMS}
            for f in flags:
                reach &= f
                for pi, p in enumerate(PLATFORMS):
                    realized[p].append(int((reach & (platform == pi)).sum()))
            return {"unit": "job", "steps": list(steps), "definition": unit_note,
                    "planted_step_probabilities": {p: [1.0] + [pr[i] for pr in probs] for i, p in enumerate(PLATFORMS)},
                    "realized": realized}

        return {
            "login": login,
            "job_completion": job_funnel(
                planted.JOB_STEPS, tech_platform, (planted.P_JOB_STARTED, planted.P_CHECKLIST_COMPLETED, planted.P_JOB_COMPLETED),
                "distinct properties.job_id with a clean event of this step and of every earlier step; platform of the technician's app"),
            "estimate_approval": job_funnel(
                planted.APPROVAL_STEPS, cust_platform, (planted.P_ESTIMATE_VIEWED, planted.P_ESTIMATE_APPROVED, planted.P_PAYMENT_COMPLETED),
                "distinct properties.job_id (estimate_id is est_ + the job number) with a clean event of this step and every "
                "earlier step; platform of the customer's app"),
        }

    def _feedback(self) -> dict:
        """Survey answers from clean events: NPS per app (every response counts), CSAT per technician
        and per job type (the job's service)."""
        n = self.n_events
        good = self.ev_good.view(n) > 0
        kind, sess, job, score = self.ev_kind.view(n), self.ev_session.view(n), self.ev_job.view(n), self.ev_c.view(n)
        answered = good & (kind == E["survey_responded"])
        nps_sel = answered & (job < 0)
        app = self.s_app.view(self.n_sessions)[sess[nps_sel]]
        nps_score = score[nps_sel]
        nps = {}
        for ai, a in enumerate(APPS):
            sc = nps_score[app == ai]
            promoters, detractors = int((sc >= 9).sum()), int((sc <= 6).sum())
            nps[a.app_id] = {"responses": int(len(sc)), "promoters": promoters, "detractors": detractors,
                             "nps": 100.0 * (promoters - detractors) / len(sc) if len(sc) else None,
                             "planted_nps": 100.0 * (sum(planted.NPS_SCORE_PROBS[ai][9:]) - sum(planted.NPS_SCORE_PROBS[ai][:7]))}
        csat_sel = answered & (job >= 0)
        c_job, c_score = job[csat_sel], score[csat_sel].astype(np.int64)
        tech = self.j.technician[c_job]
        by_tech = {}
        for t in np.unique(tech):
            sc = c_score[tech == t]
            by_tech[self.w.user_id[self.w.n_customers + int(t)]] = {
                "responses": int(len(sc)), "score_sum": int(sc.sum()), "satisfied": int((sc >= 4).sum()),
                "planted_low": bool(t % 10 == planted.LOW_CSAT_TECHNICIAN_MOD)}
        by_job_type = {}
        service = self.j.service[c_job]
        for sv in np.unique(service):
            sc = c_score[service == sv]
            by_job_type[job_type(int(sv))] = {"responses": int(len(sc)), "score_sum": int(sc.sum()), "satisfied": int((sc >= 4).sum())}
        return {"nps_by_app": nps,
                "nps_definition": "every clean survey_responded with survey_type nps counts; promoters 9-10, detractors 0-6",
                "csat_by_technician": by_tech, "csat_by_job_type": by_job_type,
                "csat_definition": "clean survey_responded with survey_type csat about a job; satisfied = score 4 or 5",
                "low_csat_technician_mod": planted.LOW_CSAT_TECHNICIAN_MOD}

    def _events(self) -> dict:
        n = self.n_events
        good_count = self.ev_good.view(n)
        good = good_count > 0
        kind = self.ev_kind.view(n)
        by_event = np.bincount(kind[good].astype(np.int64), minlength=len(EVENTS))
        skewed = good & (self.ev_skew.view(n) != 0)
        late = good & self.ev_late.view(n)
        ns = self.n_sessions
        sessions_seen = np.zeros(ns, dtype=bool)
        sessions_seen[self.ev_session.view(n)[good & (kind == E["app_opened"])]] = True
        s_app, s_version = self.s_app.view(ns), self.s_version.view(ns)
        by_release = {}
        for a in range(len(APPS)):
            for r in range(len(RELEASES)):
                by_release[release_name(a, r)] = int((sessions_seen & (s_app == a) & (s_version == r)).sum())
        return {
            "lines_clean": int(good_count.sum()),
            "distinct_message_ids": int(good.sum()),
            "duplicate_lines": int(good_count.sum() - good.sum()),
            "by_event": {EVENTS[k]: int(by_event[k]) for k in range(len(EVENTS)) if k > 1},
            "by_type": {"identify": int(by_event[0]), "screen": int(by_event[1]), "track": int(by_event[2:].sum())},
            "sessions_with_app_opened_by_release": by_release,
            "counting_note": "lines_clean counts every good line (duplicates included), as the raw layer loads them; "
                             "the other counts are over distinct messageIds",
        }, {
            "device_share_planted": SKEWED_DEVICE_SHARE,
            "offset_hours_choices": list(SKEW_HOURS_CHOICES),
            "devices_skewed": int((self.w.device_skew_us != 0).sum()),
            "events_skewed": int(skewed.sum()),
            "sample": self.skew_sample,
            "note": "for these messageIds, receivedAt - (sentAt - timestamp) equals true_time within 1 s; "
                    "timestamp and sentAt are both shifted by offset_hours",
        }, {
            "count": int(late.sum()),
            "landing_in_later_dt": int((late & self.ev_later_dt.view(n)).sum()),
            "min_queue_hours": 1.0,
            "note": "distinct clean events queued offline: sentAt and receivedAt at least 1 h after the event; "
                    "landing_in_later_dt: the receivedAt date is after the true event date",
        }

    def _crashes(self) -> dict:
        counts: dict[str, dict[str, int]] = {}
        spike_daily: dict[str, int] = {}
        group_s = planted.CRASH_GROUPS[planted.SPIKE_GROUP]
        spike_release = release_name(group_s.app, planted.SPIKE_RELEASE)
        for g, app, version, day in self.crashes:
            key = planted.CRASH_GROUPS[g].key
            rel = release_name(app, version)
            counts.setdefault(key, {})
            counts[key][rel] = counts[key].get(rel, 0) + 1
            if g == planted.SPIKE_GROUP and rel == spike_release:
                name = day_name(self.w, day)
                spike_daily[name] = spike_daily.get(name, 0) + 1
        day = self.w.spike_day
        return {
            "events_clean": len(self.crashes),
            "spike": {
                "app": APPS[group_s.app].app_id, "release": spike_release, "exception_type": group_s.exception_type,
                "crashing_frame": group_s.frame, "group_key": group_s.key, "day": day_name(self.w, day),
                "count_on_day": spike_daily.get(day_name(self.w, day), 0),
                "burst": {
                    "start": iso(spike_burst_us(self.w)[0]), "end": iso(spike_burst_us(self.w)[1]),
                    "crash_probability": planted.SPIKE_BURST_CRASH_PROBABILITY, "crashes": self.burst_crashes,
                    "report_delay_seconds": list(planted.SPIKE_BURST_REPORT_DELAY_SECONDS),
                    "note": "a bad config push: sessions of the release ending in [start, end) crash in the group with "
                            "crash_probability; their reports arrive report_delay_seconds later (the user relaunches)",
                },
                "daily_counts": dict(sorted(spike_daily.items())),
            },
            "counts_by_group_release": {k: dict(sorted(v.items())) for k, v in sorted(counts.items())},
            "groups": [{"key": g.key, "app": APPS[g.app].app_id, "base_rate_per_session": g.base_rate,
                        "release_factor": dict(zip((r.version for r in RELEASES), g.release_factor))} for g in planted.CRASH_GROUPS],
            "note": "group key = exception type | module.function of the last in_app frame; day = UTC date of the crash timestamp",
        }

    def _latency(self) -> dict:
        if self.latency:
            route = np.concatenate([x[0] for x in self.latency])
            version = np.concatenate([x[1] for x in self.latency])
            dur = np.concatenate([x[2] for x in self.latency]) / 1e6
        else:
            route = version = np.empty(0, np.int64)
            dur = np.empty(0)
        table: dict[str, dict] = {}
        for r, (_m, path, *_rest) in enumerate(ROUTES):
            for v, rel in enumerate(RELEASES):
                x = dur[(route == r) & (version == v)]
                if len(x):
                    p50, p95 = np.percentile(x, [50, 95])
                    table.setdefault(path, {})[rel.version] = {"n": int(len(x)), "p50_ms": float(p50), "p95_ms": float(p95)}
        method, path = ROUTES[planted.REGRESSION_ROUTE][:2]
        return {
            "regression": {"route": path, "method": method, "app": APPS[0].app_id, "app_version": RELEASES[planted.REGRESSION_RELEASE].version,
                           "release": release_name(0, planted.REGRESSION_RELEASE), "client_duration_multiplier": planted.REGRESSION_MULTIPLIER},
            "client_ms_by_route_version": table,
            "traces": self.trace_count,
            "percentile_method": "numpy.percentile linear interpolation (DuckDB quantile_cont) over (endTimeUnixNano - startTimeUnixNano) / 1e6 "
                                 "of clean mobile CLIENT spans (kind 3 in app resources), grouped by http.route and resource service.version",
        }

    def write(self, path, run: dict, plan, duplicates: dict, recommendations: dict, parts: dict, experiments: dict,
              partners: dict | None = None) -> dict:
        events, skew, late = self._events()
        bad = plan.counts()
        records = {}
        for source in sorted(set(self.records) | set(bad)):
            rec = dict(self.records[source])
            rec["bad_by_reason"] = dict(sorted(bad.get(source, {}).items()))
            rec["records_bad"] = sum(rec["bad_by_reason"].values())
            rec["records_total"] = rec["records_good"] + rec["records_bad"]
            records[source] = rec
        truth = {
            "run": run,
            "events": events,
            "duplicates": duplicates,
            "funnels": self._funnels(),
            "feedback": self._feedback(),
            "recommendations": recommendations,
            "parts": parts,
            "experiments": experiments,
            "partners": partners or {},
            "crashes": self._crashes(),
            "latency": self._latency(),
            "clock_skew": skew,
            "late_events": late,
            "records": records,
            "malformed": {
                "planted": [p.__dict__ for p in plan.planted],
                "truncated_files": plan.truncated_files,
                "note": "one reason per planted record; line_no is 1-based, record_index is the 0-based span index in a traces line; "
                        "records_good is what the raw layer should load (records_loaded), records_bad what it should quarantine",
            },
        }
        with open(path, "w") as fh:
            json.dump(truth, fh, indent=1, sort_keys=False)
            fh.write("\n")
        return truth
