"""The partners' side of the simulated world: what the OEM dealer network, the warranty provider and the
roadside-assistance company hold about our customers, and what our own backend records about them.

Built at the end of ``simulator.generate.generate()`` from the main world, its jobs and the
``booking_created`` events of the run, with its own random stream (``ids.PARTNERS``): nothing drawn here
moves a draw of the apps, the delivery or the extracts. It produces

- the internal ops extracts ``partner_bookings`` and ``warranty_claims`` (daily change sets, end-of-day state);
- the partner records, per ``contracts/partners/*.odcs.yaml``: OEM service orders and recall campaigns (API),
  warranty claims (daily CSV drop and the claim-status API), roadside dispatch events (signed webhook lines);
- planted reconciliation breaks and SLA breaches, and the late updates of phase 2 that resolve some breaks.

Both sides tell one story: a partner-side change and its internal mirror happen together, and a change
whose later side would fall after the end of the run does not happen at all, so the only disagreements
are the planted ones (and the reconciliation rules of docs/partners.md, Reconciliation, reimplemented in
``reconcile``, decide which breaks they are: truth.json records what the rules find, not an intention).

Times are int64 microseconds (UTC) inside, ISO-8601 with milliseconds and Z on the wire, amounts integer
cents inside and decimal strings on the wire.
"""
from __future__ import annotations

import csv
import datetime as dt
import hashlib
import hmac
import io
import json
import os
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa

from .. import ids
from ..apps import PARTNERS as WIDGET_PARTNERS
from ..apps import E, booking_id
from ..jobs import Jobs, job_ids
from ..ops import SCHEMAS as OPS_SCHEMAS
from ..world import DAY_US, HOUR_US, MINUTE_US, PLANTED_WINDOW_DAYS, REGION_UTC_OFFSET_H, SERVICES, US, World

# The roadside webhook secret of the simulated world (tests and the demo); production reads it from
# PITWALL_PARTNER_ROADSIDE_WEBHOOK_SECRET.
WEBHOOK_SECRET = "pitwall-demo-roadside-webhook-secret"
WORLD_FORMAT = "pitwall-partner-world/1"
CURRENCY = "USD"
OEM, ROADSIDE, TIRES = (WIDGET_PARTNERS.index(p) for p in ("oem_network", "roadside_co", "tire_depot"))
# Contract amountTolerance (the same for the three partners): |Δ| ≤ max(absolute, relative × internal amount).
TOLERANCE_ABS_CENTS, TOLERANCE_REL = 50, Decimal("0.01")

# OEM dealer visits: what the OEM widget books, and the dealer's price over our catalog price.
OEM_SERVICES = ("svc_oil_change", "svc_tire_rotation", "svc_brake_inspection", "svc_fluid_flush",
                "svc_brake_pads", "svc_battery_replacement", "svc_diagnostics")
OEM_SERVICE_WEIGHTS = (30, 10, 8, 5, 8, 6, 6)
OEM_PRICE_FACTOR = (1.05, 1.40)
TIRE_SERVICES = ("svc_tire_replacement", "svc_tire_rotation")
ROADSIDE_FEES_CENTS = (7500, 8500, 9500, 12500, 18900)  # jump start, lockout, flat tire, tow, long tow
P_FOLLOW_UP = 0.6                 # a booking within FOLLOW_UP_WINDOW of a completed job is booked from its post-job screen
FOLLOW_UP_WINDOW_US = 3 * DAY_US
P_OEM_CONFIRMED, P_OEM_CANCELLED = 0.95, 0.07
P_ROADSIDE_CANCELLED = 0.08
P_WARRANTY_CLAIM = 0.45           # completed repair jobs a claim is filed for
P_PARTIAL, P_REJECTED = 0.15, 0.12
P_OEM_NO_REF, P_WARRANTY_NO_REF = 0.08, 0.08   # keyed in without our reference: matched by the fallback
P_WEBHOOK_DUPLICATE, P_WEBHOOK_REORDERED = 0.03, 0.06
MISSING_PARTNER_MIN_AGE_US = 2 * DAY_US       # planted unmatched internal records are well past the 24 h rule

OEM_STATUS = {"open": "open", "scheduled": "open", "in_progress": "open", "completed": "completed",
              "invoiced": "completed", "cancelled": "cancelled"}
WARRANTY_STATUS = {"received": "pending", "in_review": "pending", "approved": "approved",
                   "partially_approved": "approved", "paid": "approved", "rejected": "rejected"}
ROADSIDE_STATUS = {"requested": "open", "assigned": "open", "en_route": "open", "arrived": "open",
                   "completed": "completed", "cancelled": "cancelled"}
INTERNAL_BOOKING_STATUS = {"confirmed": "open", "completed": "completed", "cancelled": "cancelled"}
INTERNAL_CLAIM_STATUS = {"submitted": "pending", "approved": "approved", "paid": "approved", "rejected": "rejected"}

WARRANTY_CSV_COLUMNS = ("partner_claim_id", "record_version", "claim_ref", "vin", "repair_date", "claimed_amount",
                        "approved_amount", "currency", "adjudication_status", "adjudicated_at", "updated_at", "exported_at")



# --- formatting ------------------------------------------------------------------------------------

def iso(us: int) -> str:
    return dt.datetime.fromtimestamp(us // 1000 / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def day_of(us: int) -> dt.date:
    return dt.datetime.fromtimestamp(us // US, dt.UTC).date()


def money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}" if cents >= 0 else "-" + money(-cents)


def within_tolerance(partner_cents: int, internal_cents: int) -> bool:
    """|Δ| ≤ max(0.50, 1% of the internal amount), in exact integer arithmetic (cents × 100)."""
    return 100 * abs(partner_cents - internal_cents) <= max(100 * TOLERANCE_ABS_CENTS, abs(internal_cents) * int(TOLERANCE_REL * 100))


def tolerance_cents(internal_cents: int) -> int:
    """The largest gap in whole cents still within tolerance."""
    return max(TOLERANCE_ABS_CENTS, abs(internal_cents) * int(TOLERANCE_REL * 100) // 100)


def sign(body: str, secret: str = WEBHOOK_SECRET) -> str:
    return "sha256=" + hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()


# --- what the run hands over ------------------------------------------------------------------------

class BookingLog:
    """The run's booking_created events (generated, whether or not the analytics copy was delivered: the
    backend records the booking either way), collected day by day in generate()."""

    def __init__(self) -> None:
        self.parts: list[tuple[np.ndarray, ...]] = []
        self.data_end_us = 0

    def add(self, act, delivered_true_us: np.ndarray) -> None:
        sel = np.flatnonzero(act.event_kind == E["booking_created"])
        sess = act.event_session[sel]
        self.parts.append((act.session_gid[sess], act.session_user[sess], act.event_us[sel], act.event_a[sel].astype(np.int64)))
        if len(delivered_true_us):
            self.data_end_us = max(self.data_end_us, int(delivered_true_us.max()))

    def arrays(self):
        if not self.parts:
            return (np.empty(0, np.int64),) * 4
        gid, customer, created, partner = (np.concatenate(c).astype(np.int64) for c in zip(*self.parts))
        order = np.lexsort((gid, created))
        return gid[order], customer[order], created[order], partner[order]


# --- the records ------------------------------------------------------------------------------------

@dataclass
class Booking:
    """One internal partner booking and its timeline (-1: never)."""
    booking_id: str
    partner: int
    customer: int
    vehicle: int
    service: int            # index into SERVICES, -1 for roadside
    follow_up_job: int      # -1: not a follow-up
    slot_start_us: int
    amount_cents: int       # the quoted amount (roadside: the fee, charged at completion)
    created_us: int
    confirmed_us: int = -1
    completed_us: int = -1
    cancelled_us: int = -1
    partner_ref: str | None = None

    def amount_at(self, t: int) -> int:
        """Cancelled bookings carry 0; a roadside fee is known once the dispatch completed."""
        if 0 <= self.cancelled_us < t:
            return 0
        if self.partner == ROADSIDE:
            return self.amount_cents if 0 <= self.completed_us < t else 0
        return self.amount_cents

    def status_at(self, t: int) -> str:
        if 0 <= self.cancelled_us < t:
            return "cancelled"
        if 0 <= self.completed_us < t:
            return "completed"
        if 0 <= self.confirmed_us < t:
            return "confirmed"
        return "requested"


@dataclass
class Claim:
    """One internal warranty claim (-1: never)."""
    claim_id: str
    job: int
    customer: int
    vehicle: int
    repair_date: dt.date
    amount_cents: int
    submitted_us: int
    decided_us: int = -1
    decision: str = ""      # approved | rejected
    paid_us: int = -1

    def status_at(self, t: int) -> str:
        if 0 <= self.paid_us < t:
            return "paid"
        if 0 <= self.decided_us < t:
            return self.decision
        return "submitted"


@dataclass
class Txn:
    """One partner transaction with its versions: [(at_us, fields, late)]; fields are the changing wire
    fields, merged over the fixed ones. ``late`` versions are published by the late updates (phase 2)."""
    partner: str
    txn_id: str
    fixed: dict
    versions: list = field(default_factory=list)
    late_fixed: dict = field(default_factory=dict)  # fixed fields a late version corrects


# --- reconciliation (docs/partners.md, Reconciliation) ----------------------------------------------

@dataclass(frozen=True)
class Rec:
    id: str
    ref: str | None   # partner side: the shared ref; internal side: unused
    vin: str
    date: dt.date
    cents: int
    status: str       # normalized
    created_us: int


def reconcile(partner: str, txns: list[Rec], internal: list[Rec], data_end_us: int) -> tuple[list[dict], list[dict]]:
    """The breaks and the fallback matches of one partner: exact by shared ref, fallback by (vin, date ± 1,
    amount within tolerance) one to one best first, duplicates, missing on either side, then the matched pairs'
    amount and status."""
    internal_by_id = {r.id: r for r in internal}
    breaks: list[dict] = []
    matched: dict[str, str] = {}  # txn id -> internal id

    def brk(cls, txn_id, internal_id):
        breaks.append({"partner": partner, "class": cls, "partner_txn_id": txn_id, "internal_id": internal_id})

    by_ref = defaultdict(list)
    for t in txns:
        if t.ref is not None and t.ref in internal_by_id:
            by_ref[t.ref].append(t)
    for ref, group in by_ref.items():
        group.sort(key=lambda t: (t.created_us, t.id))
        matched[group[0].id] = ref
        for extra in group[1:]:
            brk("duplicate", extra.id, ref)
    duplicate_ids = {b["partner_txn_id"] for b in breaks}

    open_txns = [t for t in txns if t.id not in matched and t.id not in duplicate_ids]
    taken = set(matched.values())
    open_internal = [r for r in internal if r.id not in taken]
    by_vin = defaultdict(list)
    for r in open_internal:
        by_vin[r.vin].append(r)
    candidates = []
    for t in open_txns:
        for r in by_vin.get(t.vin, ()):
            gap = abs((t.date - r.date).days)
            if gap <= 1 and within_tolerance(t.cents, r.cents):
                candidates.append((gap, abs(t.cents - r.cents), t.id, r.id))
    fallback = []
    used_t, used_r = set(), set()
    for gap, _amount_gap, tid, rid in sorted(candidates):
        if tid in used_t or rid in used_r:
            continue
        used_t.add(tid)
        used_r.add(rid)
        matched[tid] = rid
        fallback.append({"partner": partner, "partner_txn_id": tid, "internal_id": rid})

    txn_by_id = {t.id: t for t in txns}
    matched_keys = {}
    for tid, rid in matched.items():
        t = txn_by_id[tid]
        matched_keys.setdefault((t.vin, t.date, t.cents), rid)
    for t in open_txns:
        if t.id in matched:
            continue
        twin = matched_keys.get((t.vin, t.date, t.cents))
        if twin:
            brk("duplicate", t.id, twin)
        elif t.created_us <= data_end_us:  # created after our data ends: nothing could match it yet
            brk("missing_internal", t.id, None)
    taken = set(matched.values())
    for r in internal:
        if r.id not in taken and r.created_us < data_end_us - DAY_US:
            brk("missing_partner", None, r.id)
    for tid, rid in sorted(matched.items()):
        t, r = txn_by_id[tid], internal_by_id[rid]
        if not within_tolerance(t.cents, r.cents):
            brk("amount_mismatch", tid, rid)
        elif t.status != r.status:
            brk("status_mismatch", tid, rid)
    return breaks, fallback


def break_key(b: dict) -> tuple:
    return (b["partner"], b["class"], b["partner_txn_id"] or "", b["internal_id"] or "")


# --- API stores -----------------------------------------------------------------------------------

class VersionedStore:
    """An endpoint's records: every version (with the phase that publishes it); serves each record's current
    version among the published ones, sorted by (updated_at, *id_fields). ``phase`` is read on every call, so
    a store follows the late updates of its world (also from another process: see ``stores_from_file``)."""

    def __init__(self, id_fields: tuple[str, ...], versions: list[dict], phases: list[int], phase: Callable[[], int],
                 version_field: str = "version", amount_field: str | None = "amount"):
        self.id_fields, self.version_field, self.amount_field = id_fields, version_field, amount_field
        self._versions, self._phases, self._phase = versions, phases, phase

    def _published(self) -> list[dict]:
        phase = self._phase()
        return [v for v, p in zip(self._versions, self._phases) if p <= phase]

    def current(self) -> list[dict]:
        latest: dict[tuple, dict] = {}
        for v in self._published():
            key = tuple(v[f] for f in self.id_fields)
            if key not in latest or v[self.version_field] > latest[key][self.version_field]:
                latest[key] = v
        return sorted((dict(v) for v in latest.values()), key=lambda v: (v["updated_at"], *(v[f] for f in self.id_fields)))

    def truth(self) -> set[tuple]:
        """Every (*ids, version) published so far."""
        return {(*(v[f] for f in self.id_fields), v[self.version_field]) for v in self._published()}


ENDPOINTS = {
    # path: (partner, dataset, id fields, version field, amount field)
    "/v1/service-orders": ("oem", "service_orders", ("order_id",), "version", "amount"),
    "/v1/recall-campaigns": ("oem", "recall_campaigns", ("campaign_id", "vin"), "version", None),
    "/v1/claims/status": ("warranty", "claim_status", ("partner_claim_id",), "record_version", "approved_amount"),
}


# --- the world ------------------------------------------------------------------------------------

class PartnerWorld:
    """The partner side of one run. ``build`` makes it from the main world; ``save``/``load`` round-trip it
    through world.json (what ``python -m simulator.partners`` serves); ``apply_late_updates`` is phase 2."""

    def __init__(self, doc: dict, files: list[dict] | None = None, truth: dict | None = None,
                 ops_tables: Callable[[int], dict[str, pa.Table]] | None = None):
        self.doc = doc
        self.files = files or []      # the phase-1 landing files: [{"path", "text"}] (built worlds only)
        self.truth = truth or {}      # truth.json["partners"] (built worlds only)
        self._ops_tables = ops_tables

    def ops_tables(self, day: int) -> dict[str, pa.Table]:
        """The day's change sets of the internal ops tables partner_bookings and warranty_claims."""
        if self._ops_tables is None:
            raise RuntimeError("a loaded world has no internal extracts; they are written when the world is built")
        return self._ops_tables(day)

    def write_landing(self, landing_dir: Path) -> dict[str, int]:
        """The phase-1 partner files and world.json under <landing>/partners; returns files and bytes written."""
        landing_dir = Path(landing_dir)
        written = {"files": 0, "bytes": 0}
        for f in self.files:
            data = f["text"].encode()
            _atomic_write(landing_dir / f["path"], data)
            written["files"] += 1
            written["bytes"] += len(data)
        self.save(landing_dir / "partners" / "world.json")
        return written

    # -- persistence ---------------------------------------------------------------------------------
    @property
    def phase(self) -> int:
        return self.doc["phase"]

    def save(self, path: Path) -> None:
        _atomic_write(Path(path), (json.dumps(self.doc, indent=None, separators=(",", ":"), sort_keys=False) + "\n").encode())

    @classmethod
    def load(cls, path: Path) -> PartnerWorld:
        return cls(json.loads(Path(path).read_text()))

    def stores(self, phase: Callable[[], int] | None = None) -> dict[str, VersionedStore]:
        """The API's endpoints: path -> store. By default the stores follow this object's phase."""
        phase = phase or (lambda: self.doc["phase"])
        out = {}
        for path, (_partner, _dataset, id_fields, version_field, amount_field) in ENDPOINTS.items():
            data = self.doc["stores"][path]
            out[path] = VersionedStore(tuple(id_fields), data["versions"], data["phases"], phase, version_field, amount_field)
        return out

    def apply_late_updates(self, landing_dir: Path) -> dict:
        """Phase 2: publish the late versions on the API stores, and write the correction CSV and the late
        webhook lines into the landing zone. Idempotent (the same files, the same bytes)."""
        landing_dir = Path(landing_dir)
        for f in self.doc["late_files"]:
            _atomic_write(landing_dir / f["path"], f["text"].encode())
        self.doc["phase"] = 2
        return self.doc["late_summary"]

    # -- building --------------------------------------------------------------------------------------
    @classmethod
    def build(cls, world: World, jobs: Jobs, bookings: BookingLog) -> PartnerWorld:
        builder = _Builder(world, jobs, bookings)
        doc = builder.doc()
        return cls(doc, doc.pop("files"), doc.pop("truth"), builder.ops_tables)


def stores_from_file(path: Path) -> dict[str, VersionedStore]:
    """Stores over a world.json that follow its phase as another process (``late-updates``) changes it."""
    path = Path(path)
    state = {"mtime": path.stat().st_mtime_ns, "phase": json.loads(path.read_text())["phase"]}

    def phase() -> int:
        mtime = path.stat().st_mtime_ns
        if mtime != state["mtime"]:
            state["mtime"], state["phase"] = mtime, json.loads(path.read_text())["phase"]
        return state["phase"]

    return PartnerWorld.load(path).stores(phase)


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp"
    tmp.write_bytes(data)
    os.replace(tmp, path)


class _Builder:
    def __init__(self, world: World, jobs: Jobs, log: BookingLog):
        self.w, self.j = world, jobs
        self.rng = ids.rng_for(world.seed, ids.PARTNERS)
        self.end = world.end_us
        self.data_end = log.data_end_us or world.end_us
        self.days = world.days
        self.vin = world.vin
        self.customer_id = world.customer_id
        counts = np.bincount(world.vehicle_customer, minlength=world.n_customers)
        self.first_vehicle = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        self.vehicle_count = counts
        self.job_id = job_ids(np.arange(len(jobs)))
        # SLA days (docs/partners.md, SLAs): one each, with a trailing history before and a day after.
        planted_sla = self.days >= 8
        self.roadside_slow_day = int(self.days * 0.35) if planted_sla else -1
        self.warranty_missing_day = int(self.days * 0.5) if planted_sla else -1
        self.oem_late_day = int(self.days * 0.65) if planted_sla else -1
        self.bookings = self._bookings(*log.arrays())
        self.orders: list[Txn] = []
        self.dispatches: list[Txn] = []
        self.claims: list[Claim] = []
        self.partner_claims: list[Txn] = []
        self.near_misses: list[dict] = []
        self._oem()
        self._roadside()
        self._warranty()
        self.recalls = self._recalls()

    # -- internal bookings ------------------------------------------------------------------------------
    def _bookings(self, gid, customer, created, partner) -> list[Booking]:
        w, j, rng = self.w, self.j, self.rng
        n = len(gid)
        u_vehicle, u_follow, u_service, u_price = rng.random(n), rng.random(n), rng.random(n), rng.random(n)
        slot_days, slot_hour = rng.integers(3, 8, n), rng.uniform(8, 17, n)
        fee = np.asarray(ROADSIDE_FEES_CENTS)[rng.integers(0, len(ROADSIDE_FEES_CENTS), n)]
        done_by_customer = defaultdict(list)
        for k in np.flatnonzero(j.completed_us >= 0):
            done_by_customer[int(j.customer[k])].append((int(j.completed_us[k]), int(k)))
        for v in done_by_customer.values():
            v.sort()
        service_index = {s[0]: i for i, s in enumerate(SERVICES)}
        oem_services = np.array([service_index[s] for s in OEM_SERVICES])
        oem_cdf = np.cumsum(OEM_SERVICE_WEIGHTS) / sum(OEM_SERVICE_WEIGHTS)
        out = []
        for i in range(n):
            c, t, p = int(customer[i]), int(created[i]), int(partner[i])
            if t >= self.end:
                continue  # created after the last extract: the backend has not exported it
            vehicles = [v for v in range(self.first_vehicle[c], self.first_vehicle[c] + self.vehicle_count[c])
                        if w.vehicle_created_us[v] < t] or [int(self.first_vehicle[c])]
            vehicle = vehicles[int(u_vehicle[i] * len(vehicles))]
            follow = -1
            if p != ROADSIDE:
                recent = [k for done, k in done_by_customer.get(c, ()) if t - FOLLOW_UP_WINDOW_US <= done < t]
                if recent and u_follow[i] < P_FOLLOW_UP:
                    follow = recent[-1]
                    vehicle = int(j.vehicle[follow])
            offset_h = int(REGION_UTC_OFFSET_H[w.customer_region[c]])
            local_day = (t + offset_h * HOUR_US) // DAY_US * DAY_US
            slot = int(local_day + slot_days[i] * DAY_US + int(slot_hour[i] * HOUR_US) - offset_h * HOUR_US)
            if p == ROADSIDE:
                service, slot, cents = -1, t, int(fee[i])
            elif p == OEM:
                service = int(oem_services[np.searchsorted(oem_cdf, u_service[i], side="right")])
                factor = OEM_PRICE_FACTOR[0] + (OEM_PRICE_FACTOR[1] - OEM_PRICE_FACTOR[0]) * u_price[i]
                cents = int(round(SERVICES[service][3] * factor * 100))
            else:
                service = service_index[TIRE_SERVICES[int(u_service[i] < 0.3)]]
                cents = int(round(SERVICES[service][3] * 100))
            out.append(Booking(booking_id(gid[i]), p, c, vehicle, service, follow, slot, cents, t))
        return out

    def _late_day(self, t: int) -> bool:
        return self.oem_late_day >= 0 and (t - self.w.start_us) // DAY_US == self.oem_late_day

    # -- OEM -----------------------------------------------------------------------------------------------
    def _oem(self) -> None:
        """Dealer service orders for confirmed OEM bookings: open → scheduled → in_progress → completed →
        invoiced, or cancelled (the customer cancels in our app; the dealer follows)."""
        rng, end = self.rng, self.end
        mine = [b for b in self.bookings if b.partner == OEM]
        n = len(mine)
        confirmed = rng.random(n) < P_OEM_CONFIRMED
        confirm_lag = np.minimum(rng.lognormal(np.log(40 * MINUTE_US), 1.0, n), 6 * HOUR_US).astype(np.int64)
        late_shift = (DAY_US + rng.uniform(0, DAY_US, n)).astype(np.int64)
        mirror_lag = rng.uniform(1 * MINUTE_US, 10 * MINUTE_US, (n, 4)).astype(np.int64)
        cancelled = rng.random(n) < P_OEM_CANCELLED
        cancel_at = rng.uniform(0.1, 0.9, n)
        scheduled_lag = rng.uniform(10 * MINUTE_US, 3 * HOUR_US, n).astype(np.int64)
        start_lag = rng.uniform(-10 * MINUTE_US, 20 * MINUTE_US, n).astype(np.int64)
        duration = (rng.uniform(0.8, 1.6, n) * np.array([SERVICES[max(b.service, 0)][5] for b in mine] or [0]) * MINUTE_US).astype(np.int64)
        invoice_lag = rng.uniform(1 * HOUR_US, 20 * HOUR_US, n).astype(np.int64)
        no_ref = rng.random(n) < P_OEM_NO_REF
        seq = 0
        for i, b in enumerate(mine):
            if not confirmed[i]:
                continue  # the dealer never answered: the booking stays requested, expected nowhere
            order_created = b.created_us + int(confirm_lag[i])
            if self._late_day(order_created):
                order_created += int(late_shift[i])  # the planted volume breach: that day's orders come a day late
            b.confirmed_us = order_created + int(mirror_lag[i, 0])
            if b.confirmed_us >= end:
                b.confirmed_us = -1
                continue
            seq += 1
            order_id = f"SO-{1000000 + seq:07d}"
            b.partner_ref = order_id
            fixed = {"order_id": order_id, "booking_ref": None if no_ref[i] else b.booking_id, "vin": self.vin[b.vehicle],
                     "service_date": day_of(b.slot_start_us).isoformat(), "currency": CURRENCY, "created_at": iso(order_created)}
            order = Txn("oem", order_id, fixed)
            amount = money(b.amount_cents)
            steps = [(order_created, "open", amount), (order_created + int(scheduled_lag[i]), "scheduled", amount)]
            if cancelled[i] and b.slot_start_us > order_created + 2 * HOUR_US:
                cancel = order_created + int(cancel_at[i] * (b.slot_start_us - order_created))
                steps.append((cancel + int(mirror_lag[i, 1]), "cancelled", money(0)))
                b.cancelled_us = cancel if steps[-1][0] < end else -1
            else:
                # (on the late day the confirmation can come close to the slot: the visit never precedes it)
                started = max(b.slot_start_us + int(start_lag[i]), order_created + int(scheduled_lag[i]) + HOUR_US)
                completed = started + max(int(duration[i]), 15 * MINUTE_US)
                steps += [(started, "in_progress", amount), (completed, "completed", amount),
                          (completed + int(invoice_lag[i]), "invoiced", amount)]
                if completed + int(mirror_lag[i, 2]) < end:
                    b.completed_us = completed + int(mirror_lag[i, 2])
            # A change happens when both sides have it before the end (the cancellation: the dealer's follow-up).
            for at, status, amt in steps:
                if at >= end or (status == "completed" and b.completed_us < 0):
                    break
                order.versions.append((at, {"status": status, "amount": amt}, False))
            self.orders.append(order)
        self._plant_oem()

    # -- roadside -------------------------------------------------------------------------------------------
    def _roadside(self) -> None:
        """Dispatches for roadside requests: requested → assigned → en_route → arrived → completed (fee), or
        cancelled by the customer after assignment. Our backend mirrors each status a few seconds later."""
        rng, end = self.rng, self.end
        mine = [b for b in self.bookings if b.partner == ROADSIDE]
        n = len(mine)
        requested_lag = rng.uniform(3 * US, 40 * US, n).astype(np.int64)
        assign_lag = rng.uniform(1 * MINUTE_US, 8 * MINUTE_US, n).astype(np.int64)
        eta = rng.integers(15, 61, n)
        en_route_lag = rng.uniform(1 * MINUTE_US, 4 * MINUTE_US, n).astype(np.int64)
        arrive_factor = rng.uniform(0.8, 1.3, n)
        work = rng.uniform(10 * MINUTE_US, 45 * MINUTE_US, n).astype(np.int64)
        cancelled = rng.random(n) < P_ROADSIDE_CANCELLED
        cancel_frac = rng.uniform(0.1, 0.9, n)
        mirror_lag = rng.uniform(2 * US, 60 * US, n).astype(np.int64)
        event_ids = ids.hex_ids(rng, n * 8, 10)
        seq = 0
        for i, b in enumerate(mine):
            requested = b.created_us + int(requested_lag[i])
            assigned = requested + int(assign_lag[i])
            if assigned + int(mirror_lag[i]) >= end:
                continue  # assigned after the end: neither side has it (the request itself is not yet reconciled)
            seq += 1
            dispatch_id = f"RD-{2000000 + seq:07d}"
            b.confirmed_us, b.partner_ref = assigned + int(mirror_lag[i]), dispatch_id
            en_route = assigned + int(en_route_lag[i])
            arrived = assigned + int(eta[i] * arrive_factor[i] * MINUTE_US)
            events = [(requested, "requested", None, None), (assigned, "assigned", None, int(eta[i])),
                      (en_route, "en_route", None, max(int(eta[i]) - int((en_route - assigned) // MINUTE_US), 1))]
            if cancelled[i]:
                cancel = assigned + int(cancel_frac[i] * (arrived - assigned))
                events = [e for e in events if e[0] < cancel] + [(cancel, "cancelled", None, None)]
            else:
                events += [(arrived, "arrived", None, None), (arrived + int(work[i]), "completed", b.amount_cents, None)]
            dispatch = Txn("roadside", dispatch_id, {"dispatch_id": dispatch_id, "request_ref": b.booking_id, "vin": self.vin[b.vehicle]})
            for k, (at, status, fee, eta_min) in enumerate(events):
                if at + int(mirror_lag[i]) >= end:
                    break
                dispatch.versions.append((at, {"event_id": "evt_" + event_ids[i * 8 + k].decode(), "status": status,
                                               "fee_amount": fee, "eta_minutes": eta_min}, False))
                if status == "completed":
                    b.completed_us = at + int(mirror_lag[i])
                elif status == "cancelled":
                    b.cancelled_us = at + int(mirror_lag[i])
            self.dispatches.append(dispatch)
        self._plant_roadside()

    # -- warranty ---------------------------------------------------------------------------------------------
    def _warranty(self) -> None:
        """Claims we file for completed repair jobs; the provider receives, reviews and decides, then pays."""
        j, rng, end, w = self.j, self.rng, self.end, self.w
        repair = np.array([s[2] == "repair" for s in SERVICES])[j.service]
        done = np.flatnonzero(repair & (j.completed_us >= w.start_us) & (j.completed_us < end))
        n = len(done)
        filed = rng.random(n) < P_WARRANTY_CLAIM
        share = rng.uniform(0.4, 0.9, n)
        submit_lag = rng.uniform(1 * HOUR_US, 20 * HOUR_US, n).astype(np.int64)
        receive_lag = rng.uniform(5 * MINUTE_US, 3 * HOUR_US, n).astype(np.int64)
        review_lag = rng.uniform(4 * HOUR_US, 30 * HOUR_US, n).astype(np.int64)
        decide_lag = rng.uniform(1 * DAY_US, 3 * DAY_US, n).astype(np.int64)
        pay_lag = rng.uniform(1 * DAY_US, 3 * DAY_US, n).astype(np.int64)
        mirror_lag = rng.uniform(10 * MINUTE_US, 4 * HOUR_US, (n, 2)).astype(np.int64)
        outcome = rng.random(n)
        partial_share = rng.uniform(0.5, 0.9, n)
        no_ref = rng.random(n) < P_WARRANTY_NO_REF
        seq = 0
        for i, k in enumerate(done):
            if not filed[i]:
                continue
            submitted = int(j.completed_us[k]) + int(submit_lag[i])
            if submitted >= end:
                continue
            claim = Claim("wcl_" + self.job_id[k][4:], int(k), int(j.customer[k]), int(j.vehicle[k]), day_of(int(j.completed_us[k])),
                          int(round(float(j.invoice_amount[k]) * share[i] * 100)), submitted)
            self.claims.append(claim)
            received = submitted + int(receive_lag[i])
            if received >= end:
                continue
            seq += 1
            pid = f"WC-{3000000 + seq:07d}"
            fixed = {"partner_claim_id": pid, "claim_ref": None if no_ref[i] else claim.claim_id, "vin": self.vin[claim.vehicle],
                     "repair_date": claim.repair_date.isoformat(), "claimed_amount": money(claim.amount_cents), "currency": CURRENCY}
            txn = Txn("warranty", pid, fixed)
            reviewed = received + int(review_lag[i])
            decided = reviewed + int(decide_lag[i])
            status = "rejected" if outcome[i] < P_REJECTED else "partially_approved" if outcome[i] < P_REJECTED + P_PARTIAL else "approved"
            approved = None if status == "rejected" else money(int(claim.amount_cents * (partial_share[i] if status == "partially_approved" else 1)))
            steps = [(received, {"adjudication_status": "received", "approved_amount": None, "adjudicated_at": None}),
                     (reviewed, {"adjudication_status": "in_review", "approved_amount": None, "adjudicated_at": None})]
            if decided + int(mirror_lag[i, 0]) < end:
                claim.decided_us, claim.decision = decided + int(mirror_lag[i, 0]), "rejected" if status == "rejected" else "approved"
                steps.append((decided, {"adjudication_status": status, "approved_amount": approved, "adjudicated_at": iso(decided)}))
                paid = decided + int(pay_lag[i])
                if status != "rejected" and paid + int(mirror_lag[i, 1]) < end:
                    claim.paid_us = paid + int(mirror_lag[i, 1])
                    steps.append((paid, {"adjudication_status": "paid", "approved_amount": approved, "adjudicated_at": iso(decided)}))
            for at, fields in steps:
                if at < end:
                    txn.versions.append((at, fields, False))
            self.partner_claims.append(txn)
        self._plant_warranty()

    # -- recall campaigns -------------------------------------------------------------------------------------
    def _recalls(self) -> list[dict]:
        """A few campaigns on one make's vehicles each: open on publication, a remedy later, remedied at a visit.
        The campaigns published during the world fall in its last two weeks (PLANTED_WINDOW_DAYS), so that every
        world ends with recalls still open (remedies take up to two weeks)."""
        w, rng, end = self.w, self.rng, self.end
        campaigns = (("RC-26V-101", "Ford", "fuel pump", "high", -20), ("RC-26V-214", "Toyota", "airbag inflator", "critical", 2),
                     ("RC-26V-377", "Hyundai", "brake caliper bolt", "medium", 5), ("RC-26V-402", "Tesla", "seat belt chime", "low", 9))
        out = []
        for campaign_id, make, component, severity, day in campaigns:
            if day >= 0:
                day += max(self.days - PLANTED_WINDOW_DAYS, 0)
            published = w.start_us + min(day, max(self.days - 1, 0)) * DAY_US + 15 * HOUR_US
            affected = [v for v in range(len(self.vin)) if w.vehicle_make[v] == make]
            u = rng.random(len(affected))
            remedy_lag = rng.uniform(2 * DAY_US, 8 * DAY_US, len(affected)).astype(np.int64)
            fix_lag = rng.uniform(1 * DAY_US, 6 * DAY_US, len(affected)).astype(np.int64)
            for k, v in enumerate(affected):
                if u[k] >= 0.35 or published >= end:
                    continue
                base = {"campaign_id": campaign_id, "vin": self.vin[v], "component": component, "severity": severity,
                        "published_at": iso(published)}
                steps = [(published, "open"), (published + int(remedy_lag[k]), "remedy_available"),
                         (published + int(remedy_lag[k]) + int(fix_lag[k]), "remedied")]
                for version, (at, status) in enumerate(s for s in steps if s[0] < end):
                    out.append({**base, "version": version + 1, "remedy_status": status, "updated_at": iso(at)})
        return out

    # -- planting -----------------------------------------------------------------------------------------------
    def _pick(self, pool: list, count: int, taken: set) -> list:
        """count items of pool not yet taken, in a seeded order."""
        free = [x for x in pool if id(x) not in taken]
        order = self.rng.permutation(len(free))
        chosen = [free[k] for k in order[:count]]
        taken.update(id(x) for x in chosen)
        return chosen

    def _old_enough(self, created_us: int) -> bool:
        return created_us < self.data_end - DAY_US - MISSING_PARTNER_MIN_AGE_US

    def _plant_oem(self) -> None:
        end = self.end
        booking_of = {b.booking_id: b for b in self.bookings}
        referenced = [o for o in self.orders if o.fixed["booking_ref"] and booking_of[o.fixed["booking_ref"]].cancelled_us < 0
                      and not self._late_day(booking_of[o.fixed["booking_ref"]].confirmed_us)]
        old = [o for o in referenced if self._old_enough(booking_of[o.fixed["booking_ref"]].created_us)]
        completed = [o for o in old if booking_of[o.fixed["booking_ref"]].completed_us >= 0]
        taken: set = set()
        late_at = iter(end + int(h * HOUR_US) for h in np.linspace(2, 20, 64))

        def amount_of(o):
            return booking_of[o.fixed["booking_ref"]].amount_cents

        # amount_mismatch: the dealer's total is off; two are corrected by a late version
        for k, o in enumerate(self._pick(referenced, 4, taken)):
            wrong = money(amount_of(o) + max(2500, amount_of(o) // 5))
            o.versions = [(at, {**f, "amount": wrong}, late) for at, f, late in o.versions]
            if k < 2 and o.versions:
                o.versions.append((next(late_at), {**o.versions[-1][1], "amount": money(amount_of(o))}, True))
        # status_mismatch: stuck before completion (two get the completion late) or cancelled by the dealer
        for k, o in enumerate(self._pick(completed, 2, taken)):
            last = [v for v in o.versions if v[1]["status"] not in ("completed", "invoiced")]
            o.versions = last
            o.versions.append((next(late_at), {"status": "completed", "amount": money(amount_of(o))}, True))
        for o in self._pick(old, 2, taken):
            o.versions.append((o.versions[-1][0] + HOUR_US, {"status": "cancelled", "amount": money(amount_of(o))}, False))
            o.versions = [v for v in o.versions if v[0] < end] or o.versions[:1]
        # missing_partner: the order never reached the API; two arrive late, in their current state
        for k, o in enumerate(self._pick(old, 4, taken)):
            self.orders.remove(o)
            if k < 2:
                current = o.versions[-1][1]
                self.orders.append(Txn("oem", o.txn_id, o.fixed, [(next(late_at), current, True)]))
        # duplicate: the dealer opened the order twice (same booking_ref, a later order), or keyed a copy
        seq = 1000000 + len(self.orders) + 50
        for k, o in enumerate(self._pick(old, 3, taken)):  # old enough that the copy, hours later, is before the end
            seq += 1
            copy_id = f"SO-{seq:07d}"
            shift = 3 * HOUR_US
            fixed = {**o.fixed, "order_id": copy_id, "created_at": iso(o.versions[0][0] + shift)}
            if k == 2:
                fixed["booking_ref"] = None  # a copy keyed in by hand: same vin, date and amount
            versions = [(at + shift, f, late) for at, f, late in o.versions if at + shift < end and not late][:2]
            self.orders.append(Txn("oem", copy_id, fixed, versions))
        # missing_internal: walk-in orders for our customers' vehicles, and an order for a booking we never confirmed
        walk_ins = self.rng.integers(0, len(self.vin), 3)
        for k, v in enumerate(walk_ins):
            seq += 1
            at = self.w.start_us + int((k + 1) * (end - self.w.start_us) / 5)
            order_id = f"SO-{seq:07d}"
            ref = None
            if k == 2:
                requested = [b for b in self.bookings if b.partner == OEM and b.confirmed_us < 0 and b.created_us < at]
                if requested:
                    ref, v = requested[0].booking_id, requested[0].vehicle
            fixed = {"order_id": order_id, "booking_ref": ref, "vin": self.vin[v], "service_date": day_of(at + DAY_US).isoformat(),
                     "currency": CURRENCY, "created_at": iso(at)}
            self.orders.append(Txn("oem", order_id, fixed, [(at, {"status": "scheduled", "amount": money(8900 + 1000 * k)}, False)]))
        # fallback matches that must hold (no ref, the visit a day off, a few cents off) and near misses that must not
        for k, o in enumerate(self._pick(referenced, 3, taken)):
            b = booking_of[o.fixed["booking_ref"]]
            o.fixed = {**o.fixed, "booking_ref": None, "service_date": (day_of(b.slot_start_us) + dt.timedelta(days=k % 2)).isoformat()}
            o.versions = [(at, {**f, "amount": money(b.amount_cents + 20)} if f["status"] != "cancelled" else f, late)
                          for at, f, late in o.versions]
        for o in self._pick(old, 2, taken):
            b = booking_of[o.fixed["booking_ref"]]
            gap = tolerance_cents(b.amount_cents) + 5
            o.fixed = {**o.fixed, "booking_ref": None}
            o.versions = [(at, {**f, "amount": money(b.amount_cents + gap)}, late) for at, f, late in o.versions]
            self.near_misses.append({"partner": "oem", "partner_txn_id": o.txn_id, "internal_id": b.booking_id,
                                     "amount_gap": money(gap), "tolerance": money(tolerance_cents(b.amount_cents))})
        self.orders.sort(key=lambda o: o.txn_id)

    def _plant_roadside(self) -> None:
        end = self.end
        booking_of = {b.booking_id: b for b in self.bookings}
        done = [d for d in self.dispatches if booking_of[d.fixed["request_ref"]].completed_us >= 0
                and self._old_enough(booking_of[d.fixed["request_ref"]].created_us)]
        taken: set = set()
        late_at = iter(end + int(m * MINUTE_US) for m in range(20, 400, 7))
        event_ids = iter("evt_" + h.decode() for h in ids.hex_ids(self.rng, 64, 10))

        def last(d, status):
            return next(v for v in reversed(d.versions) if v[1]["status"] == status)

        # amount_mismatch: the completion's fee is off (one corrected by a later completed event)
        for k, d in enumerate(self._pick(done, 2, taken)):
            at, f, _ = last(d, "completed")
            right = f["fee_amount"]
            d.versions = [v for v in d.versions if v[1]["status"] != "completed"] + [(at, {**f, "fee_amount": right + 3000}, False)]
            if k == 0:
                d.versions.append((next(late_at), {**f, "event_id": next(event_ids), "fee_amount": right}, True))
        # status_mismatch: the partner reports a cancellation (with the fee, so only the status disagrees); one is
        # corrected by a later completed event
        for k, d in enumerate(self._pick(done, 2, taken)):
            at, f, _ = last(d, "completed")
            d.versions = [v for v in d.versions if v[1]["status"] != "completed"] + [(at, {**f, "status": "cancelled"}, False)]
            if k == 0:
                d.versions.append((next(late_at), {**f, "event_id": next(event_ids)}, True))
        # missing_partner: no webhook ever came for this dispatch
        for d in self._pick(done, 1, taken):
            self.dispatches.remove(d)
        # duplicate: the dispatcher opened the request twice, then cancelled the copy
        seq = 2000000 + len(self.dispatches) + 50
        for d in self._pick(done, 1, taken):
            seq += 1
            at = d.versions[0][0] + 2 * MINUTE_US
            copy = Txn("roadside", f"RD-{seq:07d}", {**d.fixed, "dispatch_id": f"RD-{seq:07d}"})
            copy.versions = [(at, {"event_id": next(event_ids), "status": "requested", "fee_amount": None, "eta_minutes": None}, False),
                             (at + 4 * MINUTE_US, {"event_id": next(event_ids), "status": "cancelled", "fee_amount": None, "eta_minutes": None}, False)]
            self.dispatches.append(copy)
        # missing_internal: a request the customer phoned in (no reference of ours)
        if self.days >= 2:
            seq += 1
            at = self.w.start_us + (end - self.w.start_us) // 3
            v = int(self.rng.integers(0, len(self.vin)))
            phoned = Txn("roadside", f"RD-{seq:07d}", {"dispatch_id": f"RD-{seq:07d}", "request_ref": None, "vin": self.vin[v]})
            phoned.versions = [(at, {"event_id": next(event_ids), "status": "requested", "fee_amount": None, "eta_minutes": None}, False),
                               (at + 5 * MINUTE_US, {"event_id": next(event_ids), "status": "assigned", "fee_amount": None, "eta_minutes": 30}, False),
                               (at + 50 * MINUTE_US, {"event_id": next(event_ids), "status": "completed", "fee_amount": 9500, "eta_minutes": None}, False)]
            self.dispatches.append(phoned)
        self.dispatches.sort(key=lambda d: d.txn_id)

    def _plant_warranty(self) -> None:
        end = self.end
        claim_of = {c.claim_id: c for c in self.claims}
        referenced = [t for t in self.partner_claims if t.fixed["claim_ref"]]
        old = [t for t in referenced if self._old_enough(claim_of[t.fixed["claim_ref"]].submitted_us)]
        decided = [t for t in old if claim_of[t.fixed["claim_ref"]].decision == "approved"]
        taken: set = set()
        late_at = iter(end + int(h * HOUR_US) for h in np.linspace(1, 18, 64))

        def claim(t):
            return claim_of[t.fixed["claim_ref"]]

        # amount_mismatch: the provider keyed another claimed amount; two are corrected late
        for k, t in enumerate(self._pick(referenced, 4, taken)):
            c = claim(t)
            t.fixed = {**t.fixed, "claimed_amount": money(max(c.amount_cents * 4 // 5, c.amount_cents - tolerance_cents(c.amount_cents) - 500))}
            if k < 2:
                t.versions.append((next(late_at), dict(t.versions[-1][1]), True))
                t.late_fixed = {"claimed_amount": money(c.amount_cents)}
        # status_mismatch: approved on our side, still in review at the provider (two decided late), or rejected there
        for k, t in enumerate(self._pick(decided, 4, taken)):
            c = claim(t)
            review = [v for v in t.versions if v[1]["adjudication_status"] in ("received", "in_review")]
            if k < 2:
                t.versions = review + [(next(late_at), {"adjudication_status": "approved", "approved_amount": money(c.amount_cents),
                                                        "adjudicated_at": iso(review[-1][0] + DAY_US)}, True)]
            else:
                at = review[-1][0] + DAY_US
                t.versions = review + [(at, {"adjudication_status": "rejected", "approved_amount": None, "adjudicated_at": iso(at)}, False)]
        # missing_partner: never received (our side stays submitted); two arrive late
        for k, t in enumerate(self._pick(old, 4, taken)):
            c = claim(t)
            c.decided_us, c.decision, c.paid_us = -1, "", -1
            self.partner_claims.remove(t)
            if k < 2:
                received = {"adjudication_status": "received", "approved_amount": None, "adjudicated_at": None}
                self.partner_claims.append(Txn("warranty", t.txn_id, t.fixed, [(next(late_at), received, True)]))
        # duplicate: the same claim received twice (a later claim id), and a hand-keyed copy without our ref
        seq = 3000000 + len(self.partner_claims) + 50
        # The copy arrives after the original's last version: whatever a reader takes as a claim's creation (its
        # first version, or its first row in a file, which holds end-of-day states only), the original is first.
        settled = [t for t in old if max(at for at, _f, _l in t.versions) < end - DAY_US]
        for k, t in enumerate(self._pick(settled, 3, taken)):
            seq += 1
            shift = max(at for at, _f, _l in t.versions) + 2 * HOUR_US - t.versions[0][0]
            fixed = {**t.fixed, "partner_claim_id": f"WC-{seq:07d}"}
            if k == 2:
                fixed["claim_ref"] = None
            versions = [(at + shift, f, False) for at, f, late in t.versions[:2] if at + shift < end and not late]
            if versions:
                self.partner_claims.append(Txn("warranty", fixed["partner_claim_id"], fixed, versions))
        # missing_internal: claims the provider has for repairs we never filed
        for k in range(3):
            seq += 1
            at = self.w.start_us + int((k + 1) * (end - self.w.start_us) / 5)
            v = int(self.rng.integers(0, len(self.vin)))
            fixed = {"partner_claim_id": f"WC-{seq:07d}", "claim_ref": None, "vin": self.vin[v],
                     "repair_date": day_of(at - DAY_US).isoformat(), "claimed_amount": money(15000 + 2500 * k), "currency": CURRENCY}
            self.partner_claims.append(Txn("warranty", fixed["partner_claim_id"], fixed,
                                           [(at, {"adjudication_status": "received", "approved_amount": None, "adjudicated_at": None}, False)]))
        # fallback matches (no ref; the repair date a day off; a few cents off) and near misses
        for k, t in enumerate(self._pick(referenced, 3, taken)):
            c = claim(t)
            t.fixed = {**t.fixed, "claim_ref": None, "claimed_amount": money(c.amount_cents + 30),
                       "repair_date": (c.repair_date - dt.timedelta(days=k % 2)).isoformat()}
        for t in self._pick(old, 2, taken):
            c = claim(t)
            gap = tolerance_cents(c.amount_cents) + 7
            t.fixed = {**t.fixed, "claim_ref": None, "claimed_amount": money(c.amount_cents + gap)}
            self.near_misses.append({"partner": "warranty", "partner_txn_id": t.txn_id, "internal_id": c.claim_id,
                                     "amount_gap": money(gap), "tolerance": money(tolerance_cents(c.amount_cents))})
        self.partner_claims.sort(key=lambda t: t.txn_id)

    # -- rendering ------------------------------------------------------------------------------------------------
    def _order_records(self) -> tuple[list[dict], list[int]]:
        records, phases = [], []
        for o in self.orders:
            for k, (at, f, late) in enumerate(sorted(o.versions, key=lambda v: v[0])):
                fixed = o.fixed
                records.append({"order_id": fixed["order_id"], "version": k + 1, "booking_ref": fixed["booking_ref"], "vin": fixed["vin"],
                                "status": f["status"], "service_date": fixed["service_date"], "amount": f["amount"],
                                "currency": fixed["currency"], "created_at": fixed["created_at"], "updated_at": iso(at)})
                phases.append(2 if late else 1)
        return records, phases

    def _claim_versions(self) -> list[tuple[dict, int, int]]:
        """Every version of every partner claim as a full CSV-shaped record (without exported_at): (record, at_us, phase)."""
        out = []
        for t in self.partner_claims:
            for k, (at, f, late) in enumerate(sorted(t.versions, key=lambda v: v[0])):
                fixed = {**t.fixed, **(t.late_fixed if late else {})}
                out.append(({"partner_claim_id": t.txn_id, "record_version": k + 1, "claim_ref": fixed["claim_ref"], "vin": fixed["vin"],
                             "repair_date": fixed["repair_date"], "claimed_amount": fixed["claimed_amount"],
                             "approved_amount": f["approved_amount"], "currency": fixed["currency"],
                             "adjudication_status": f["adjudication_status"], "adjudicated_at": f["adjudicated_at"],
                             "updated_at": iso(at)}, at, 2 if late else 1))
        return out

    def _warranty_files(self, versions) -> tuple[list[dict], list[dict]]:
        """Daily drops: the claims changed on day D in their end-of-day state, written the next morning into
        dt=D; the missing day's changes ride in the next day's file. Late versions make the file of the day
        after the run (phase 2)."""
        start = self.w.start_us
        export_rng = ids.rng_for(self.w.seed, ids.PARTNERS, 1)
        export_at = start + np.arange(self.days + 2) * DAY_US + DAY_US + export_rng.uniform(2 * HOUR_US, 5 * HOUR_US, self.days + 2).astype(np.int64)
        by_day: dict[int, dict[str, tuple]] = defaultdict(dict)
        for record, at, phase in sorted(versions, key=lambda v: (v[1], v[0]["partner_claim_id"], v[0]["record_version"])):
            day = (at - start) // DAY_US
            if phase == 1 and day == self.warranty_missing_day:
                day += 1
            by_day[int(day)][record["partner_claim_id"]] = (record, phase)  # later versions overwrite: end-of-day state
        files, late_files = [], []
        for day in sorted(by_day):
            rows = sorted(by_day[day].values(), key=lambda rp: rp[0]["partner_claim_id"])
            date = day_of(start + day * DAY_US).isoformat()
            buf = io.StringIO()
            writer = csv.writer(buf, lineterminator="\r\n")
            writer.writerow(WARRANTY_CSV_COLUMNS)
            for record, _phase in rows:
                row = {**record, "exported_at": iso(int(export_at[day]))}
                writer.writerow(["" if row[c] is None else row[c] for c in WARRANTY_CSV_COLUMNS])
            entry = {"path": f"partners/warranty/dt={date}/claims_{date.replace('-', '')}.csv", "text": buf.getvalue(),
                     "rows": len(rows), "day": date}
            (late_files if any(p == 2 for _r, p in rows) else files).append(entry)
        return files, late_files

    def _webhook_lines(self) -> tuple[list[dict], list[dict], dict]:
        """Signed webhook deliveries: seconds to ~2 min after the event, some retried (a duplicate line), some held
        back past the next event (out of order); on the slow day, 20-90 minutes (never past that day's midnight)."""
        rng = ids.rng_for(self.w.seed, ids.PARTNERS, 2)
        start, end = self.w.start_us, self.end
        deliveries = []  # (received_us, body, phase)
        stats = {"events": 0, "duplicate_lines": 0, "held_back": 0, "late_lines": 0}
        for d in self.dispatches:
            for at, f, late in sorted(d.versions, key=lambda v: v[0]):
                event = {"event_id": f["event_id"], "dispatch_id": d.fixed["dispatch_id"], "request_ref": d.fixed["request_ref"],
                         "vin": d.fixed["vin"], "status": f["status"], "occurred_at": iso(at),
                         "fee_amount": None if f["fee_amount"] is None else float(Decimal(f["fee_amount"]) / 100),
                         "currency": CURRENCY if f["fee_amount"] is not None else None, "eta_minutes": f["eta_minutes"]}
                body = json.dumps(event)
                lag = int(min(rng.lognormal(np.log(8 * US), 1.0), 120 * US))
                if rng.random() < P_WEBHOOK_REORDERED:
                    lag += int(rng.uniform(60 * US, 170 * US))
                    stats["held_back"] += 1
                day = (at - start) // DAY_US
                if day == self.roadside_slow_day and not late:
                    midnight = start + (day + 1) * DAY_US
                    lag = int(min(rng.uniform(20 * MINUTE_US, 90 * MINUTE_US), midnight - at - US))
                received = at + max(lag, 1000)
                phase = 2 if (late or received >= end) else 1
                stats["events"] += 1
                deliveries.append((received, body, phase))
                if rng.random() < P_WEBHOOK_DUPLICATE:
                    again = received + int(rng.uniform(0.5 * US, 30 * US))
                    deliveries.append((again, body, 2 if (late or again >= end) else 1))
                    stats["duplicate_lines"] += 1
        files: dict[str, list[tuple[int, str, int]]] = defaultdict(list)
        for received, body, phase in deliveries:
            stamp = dt.datetime.fromtimestamp(received // US, dt.UTC)
            files[f"partners/roadside/dt={stamp:%Y-%m-%d}/webhooks-{stamp:%H}.jsonl"].append((received, body, phase))
        early, late_files = [], []
        for path in sorted(files):
            lines = sorted(files[path])
            text = "".join(json.dumps({"received_at": iso(r), "signature": sign(b), "body": b}) + "\n" for r, b, _p in lines)
            phase = max(p for _r, _b, p in lines)
            (late_files if phase == 2 else early).append({"path": path, "text": text, "rows": len(lines)})
            stats["late_lines"] += len(lines) if phase == 2 else 0
        return early, late_files, stats

    # -- internal extracts ----------------------------------------------------------------------------------------
    def ops_tables(self, d: int) -> dict[str, pa.Table]:
        """The day's change sets of partner_bookings and warranty_claims, in their end-of-day state."""
        day0, day1 = self.w.start_us + d * DAY_US, self.w.start_us + (d + 1) * DAY_US
        out = {}
        rows = []
        for b in self.bookings:
            times = [t for t in (b.created_us, b.confirmed_us, b.completed_us, b.cancelled_us) if 0 <= t < day1]
            if not times or not any(day0 <= t for t in times):
                continue
            conf = b.confirmed_us if 0 <= b.confirmed_us < day1 else None
            rows.append({
                "booking_id": b.booking_id, "partner_id": WIDGET_PARTNERS[b.partner], "customer_id": self.customer_id[b.customer],
                "vin": self.vin[b.vehicle], "service_id": SERVICES[b.service][0] if b.service >= 0 else None,
                "slot_start": b.slot_start_us, "amount": Decimal(money(b.amount_at(day1))), "currency": CURRENCY,
                "status": b.status_at(day1), "partner_ref": b.partner_ref if conf is not None else None,
                "follow_up_of_job_id": self.job_id[b.follow_up_job] if b.follow_up_job >= 0 else None,
                "created_at": b.created_us, "confirmed_at": conf,
                "completed_at": b.completed_us if 0 <= b.completed_us < day1 else None,
                "cancelled_at": b.cancelled_us if 0 <= b.cancelled_us < day1 else None, "updated_at": max(times)})
        if rows:
            out["partner_bookings"] = pa.Table.from_pylist(rows, schema=OPS_SCHEMAS["partner_bookings"])
        rows = []
        for c in self.claims:
            times = [t for t in (c.submitted_us, c.decided_us, c.paid_us) if 0 <= t < day1]
            if not times or not any(day0 <= t for t in times):
                continue
            rows.append({"claim_id": c.claim_id, "job_id": self.job_id[c.job], "customer_id": self.customer_id[c.customer],
                         "vin": self.vin[c.vehicle], "repair_date": c.repair_date, "amount": Decimal(money(c.amount_cents)),
                         "currency": CURRENCY, "status": c.status_at(day1), "submitted_at": c.submitted_us, "updated_at": max(times)})
        if rows:
            out["warranty_claims"] = pa.Table.from_pylist(rows, schema=OPS_SCHEMAS["warranty_claims"])
        return out

    # -- truth ---------------------------------------------------------------------------------------------------
    def _internal_records(self) -> dict[str, list[Rec]]:
        out = {"oem": [], "roadside": [], "warranty": []}
        for b in self.bookings:
            status = b.status_at(self.end)
            if b.partner in (OEM, ROADSIDE) and status in INTERNAL_BOOKING_STATUS:
                out["oem" if b.partner == OEM else "roadside"].append(Rec(
                    b.booking_id, None, self.vin[b.vehicle], day_of(b.slot_start_us), b.amount_at(self.end),
                    INTERNAL_BOOKING_STATUS[status], b.created_us))
        for c in self.claims:
            out["warranty"].append(Rec(c.claim_id, None, self.vin[c.vehicle], c.repair_date, c.amount_cents,
                                       INTERNAL_CLAIM_STATUS[c.status_at(self.end)], c.submitted_us))
        return out

    def _transactions(self, phase: int, orders: list[dict], order_phases, claim_versions, dispatch_events) -> dict[str, list[Rec]]:
        out = {"oem": [], "roadside": [], "warranty": []}
        latest: dict[str, dict] = {}
        for r, p in zip(orders, order_phases):
            if p <= phase and (r["order_id"] not in latest or r["version"] > latest[r["order_id"]]["version"]):
                latest[r["order_id"]] = r
        for r in latest.values():
            out["oem"].append(Rec(r["order_id"], r["booking_ref"], r["vin"], dt.date.fromisoformat(r["service_date"]),
                                  _cents(r["amount"]), OEM_STATUS[r["status"]], _us(r["created_at"])))
        latest, first = {}, {}
        for r, at, p in claim_versions:
            if p <= phase:
                key = r["partner_claim_id"]
                first[key] = min(first.get(key, at), at)
                if key not in latest or r["record_version"] > latest[key]["record_version"]:
                    latest[key] = r
        for key, r in latest.items():
            out["warranty"].append(Rec(key, r["claim_ref"], r["vin"], dt.date.fromisoformat(r["repair_date"]),
                                       _cents(r["claimed_amount"]), WARRANTY_STATUS[r["adjudication_status"]], first[key]))
        by_dispatch = defaultdict(dict)
        for event, p in dispatch_events:
            if p <= phase:
                by_dispatch[event["dispatch_id"]][event["event_id"]] = event
        for dispatch_id, events in by_dispatch.items():
            ordered = sorted(events.values(), key=lambda e: (e["occurred_at"], e["event_id"]))
            fees = [e for e in ordered if e["fee_amount"] is not None]
            out["roadside"].append(Rec(dispatch_id, ordered[0]["request_ref"], ordered[0]["vin"], dt.date.fromisoformat(ordered[0]["occurred_at"][:10]),
                                       _cents(fees[-1]["fee_amount"]) if fees else 0, ROADSIDE_STATUS[ordered[-1]["status"]],
                                       _us(ordered[0]["occurred_at"])))
        return out

    def doc(self) -> dict:
        orders, order_phases = self._order_records()
        claim_versions = self._claim_versions()
        warranty_files, warranty_late = self._warranty_files(claim_versions)
        webhook_files, webhook_late, webhook_stats = self._webhook_lines()
        dispatch_events = []
        for f in webhook_files + webhook_late:
            for line in f["text"].splitlines():
                dispatch_events.append((json.loads(json.loads(line)["body"]), 2 if f in webhook_late else 1))
        internal = self._internal_records()
        results = {}
        for phase in (1, 2):
            txns = self._transactions(phase, orders, order_phases, claim_versions, dispatch_events)
            results[phase] = {p: reconcile(p, txns[p], internal[p], self.data_end) for p in ("oem", "warranty", "roadside")}
        after = {break_key(b) for p in results[2] for b in results[2][p][0]}
        breaks, fallback = [], []
        for p in ("oem", "warranty", "roadside"):
            found, matches = results[1][p]
            breaks += [{**b, "resolved_by_late_update": break_key(b) not in after} for b in found]
            fallback += matches
        breaks.sort(key=break_key)
        new_in_phase_2 = sorted(after - {break_key(b) for b in breaks})
        claim_status = [{k: r[k] for k in ("partner_claim_id", "record_version", "adjudication_status", "approved_amount", "updated_at")}
                        for r, _at, _p in claim_versions]
        claim_phases = [p for _r, _at, p in claim_versions]
        stores = {
            "/v1/service-orders": {"versions": orders, "phases": order_phases},
            "/v1/recall-campaigns": {"versions": self.recalls, "phases": [1] * len(self.recalls)},
            "/v1/claims/status": {"versions": claim_status, "phases": claim_phases},
        }
        day = lambda d: day_of(self.w.start_us + d * DAY_US).isoformat()  # noqa: E731
        sla = []
        if self.oem_late_day >= 0:
            # names: the contract's slaProperties (plus volume, its volumePerDay); the roadside contract judges
            # the same delivery lag as latency and as freshness
            sla = [{"partner": "roadside", "dataset": "dispatch_events", "day": day(self.roadside_slow_day), "sla": "latency"},
                   {"partner": "roadside", "dataset": "dispatch_events", "day": day(self.roadside_slow_day), "sla": "freshness"},
                   {"partner": "warranty", "dataset": "claims", "day": day(self.warranty_missing_day), "sla": "volume"},
                   {"partner": "warranty", "dataset": "claims", "day": day(self.warranty_missing_day), "sla": "timeOfAvailability"},
                   {"partner": "warranty", "dataset": "claims", "day": day(self.warranty_missing_day), "sla": "freshness"},
                   {"partner": "oem", "dataset": "service_orders", "day": day(self.oem_late_day), "sla": "volume"}]
        late_files = [{"path": f["path"], "text": f["text"]} for f in warranty_late + webhook_late]
        late_summary = {
            "service_order_versions": order_phases.count(2), "claim_versions": claim_phases.count(2),
            "warranty_files": [f["path"] for f in warranty_late], "webhook_files": [f["path"] for f in webhook_late],
            "webhook_lines": sum(f["rows"] for f in webhook_late),
            "resolves": [{"partner": b["partner"], "class": b["class"], "partner_txn_id": b["partner_txn_id"], "internal_id": b["internal_id"]}
                         for b in breaks if b["resolved_by_late_update"]],
        }
        counts = {p: {"transactions": len(self._transactions(1, orders, order_phases, claim_versions, dispatch_events)[p]),
                      "internal_records": len(internal[p]),
                      "breaks": sum(1 for b in breaks if b["partner"] == p),
                      "fallback_matches": sum(1 for m in fallback if m["partner"] == p)} for p in ("oem", "warranty", "roadside")}
        truth = {
            "data_end_at": iso(self.data_end),
            "amount_tolerance": {"absolute": "0.50", "relative": "0.01"},
            "breaks": breaks,
            "fallback_matches": fallback,
            "near_misses": self.near_misses,
            "breaks_new_after_late_updates": [list(k) for k in new_in_phase_2],
            "sla_breaches": sla,
            "late_updates": late_summary,
            "counts": counts,
            "bookings": {WIDGET_PARTNERS[p]: sum(1 for b in self.bookings if b.partner == p) for p in range(len(WIDGET_PARTNERS))},
            "warranty_claims": len(self.claims),
            "webhooks": {**webhook_stats, "files": len(webhook_files), "secret_env": "PITWALL_PARTNER_ROADSIDE_WEBHOOK_SECRET"},
            "warranty_files": {f["day"]: f["rows"] for f in warranty_files},
            "recall_campaign_versions": len(self.recalls),
            "note": "breaks are what the rules of docs/partners.md, Reconciliation find on the phase-1 data (the end of the "
                    "data = the latest event's true time); resolved_by_late_update: gone once the late updates are applied. "
                    "SLA days: volume by the contract's volumeDateField, freshness/latency by the record's own time "
                    "(updated_at; roadside occurred_at); timeOfAvailability: the day's file never landed. Days after the "
                    "end of the data hold only late updates and are not judged.",
        }
        return {
            "format": WORLD_FORMAT, "seed": self.w.seed, "start_date": day(0), "days": self.days, "end_at": iso(self.end),
            "phase": 1, "webhook_secret": WEBHOOK_SECRET,
            "stores": stores,
            "files": [{"path": f["path"], "text": f["text"]} for f in warranty_files + webhook_files],
            "late_files": late_files, "late_summary": late_summary,
            "truth": truth,
        }


def _cents(value) -> int:
    return int((Decimal(str(value)) * 100).to_integral_value())


def _us(value: str) -> int:
    return int(dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000) * 1000
