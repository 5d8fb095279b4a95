"""Service-backend extracts and vehicle telemetry, as daily Parquet files.

Ops: each day's extract holds the rows created or changed that day, in their end-of-day state;
the first day's extract holds the initial state (every row existing by the end of day one).
Telemetry: connected vehicles report a few snapshots a day.
Timestamps are timestamp[us, tz=UTC].
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from . import ids
from .jobs import Jobs, job_ids
from .parts import PartUsage
from .world import DAY_US, HOUR_US, OIL_CHANGE_SERVICE, REGIONS, SEGMENTS, SERVICES, World

TS = pa.timestamp("us", tz="UTC")
MONEY = pa.decimal128(12, 2)

SCHEMAS = {
    "customers": pa.schema([("customer_id", pa.string()), ("email", pa.string()), ("full_name", pa.string()),
                            ("region", pa.string()), ("segment", pa.string()), ("created_at", TS), ("updated_at", TS)]),
    "vehicles": pa.schema([("vin", pa.string()), ("customer_id", pa.string()), ("make", pa.string()), ("model", pa.string()),
                           ("model_year", pa.int64()), ("fuel_type", pa.string()), ("created_at", TS), ("updated_at", TS)]),
    "technicians": pa.schema([("technician_id", pa.string()), ("full_name", pa.string()), ("region", pa.string()),
                              ("skill_level", pa.int64()), ("hired_at", TS), ("updated_at", TS)]),
    "jobs": pa.schema([("job_id", pa.string()), ("customer_id", pa.string()), ("vin", pa.string()), ("technician_id", pa.string()),
                       ("service_id", pa.string()), ("status", pa.string()), ("scheduled_for", TS), ("assigned_at", TS),
                       ("started_at", TS), ("completed_at", TS), ("cancelled_at", TS), ("created_at", TS), ("updated_at", TS)]),
    "invoices": pa.schema([("invoice_id", pa.string()), ("job_id", pa.string()), ("customer_id", pa.string()),
                           ("amount", pa.float64()), ("currency", pa.string()), ("status", pa.string()), ("issued_at", TS),
                           ("paid_at", TS), ("updated_at", TS)]),
    "service_catalog": pa.schema([("service_id", pa.string()), ("name", pa.string()), ("kind", pa.string()), ("price", pa.float64()),
                                  ("margin", pa.float64()), ("duration_min", pa.int64()), ("updated_at", TS)]),
    "parts_catalog": pa.schema([("part_id", pa.string()), ("name", pa.string()), ("category", pa.string()),
                                ("unit_cost", pa.float64()), ("unit_price", pa.float64()), ("service_id", pa.string()), ("updated_at", TS)]),
    "job_parts": pa.schema([("job_part_id", pa.string()), ("job_id", pa.string()), ("part_id", pa.string()),
                            ("quantity", pa.int64()), ("used_at", TS), ("updated_at", TS)]),
    # Partner bookings and warranty claims (simulator/partners/world.py writes them once the run is over:
    # they follow the run's booking_created events). Amounts are exact decimals, as the backend stores them.
    "partner_bookings": pa.schema([
        ("booking_id", pa.string()), ("partner_id", pa.string()), ("customer_id", pa.string()), ("vin", pa.string()),
        ("service_id", pa.string()), ("slot_start", TS), ("amount", MONEY), ("currency", pa.string()),
        ("status", pa.string()), ("partner_ref", pa.string()), ("follow_up_of_job_id", pa.string()),
        ("created_at", TS), ("confirmed_at", TS), ("completed_at", TS), ("cancelled_at", TS), ("updated_at", TS)]),
    "warranty_claims": pa.schema([
        ("claim_id", pa.string()), ("job_id", pa.string()), ("customer_id", pa.string()), ("vin", pa.string()),
        ("repair_date", pa.date32()), ("amount", MONEY), ("currency", pa.string()), ("status", pa.string()),
        ("submitted_at", TS), ("updated_at", TS)]),
}
KEYS = {"customers": "customer_id", "vehicles": "vin", "technicians": "technician_id", "jobs": "job_id",
        "invoices": "invoice_id", "service_catalog": "service_id", "parts_catalog": "part_id", "job_parts": "job_part_id",
        "partner_bookings": "booking_id", "warranty_claims": "claim_id"}
PARTNER_TABLES = ("partner_bookings", "warranty_claims")
TABLES = tuple(SCHEMAS)

TELEMETRY_SCHEMA = pa.schema([
    ("vin", pa.string()), ("observed_at", TS), ("odometer_km", pa.float64()), ("oil_life_pct", pa.float64()),
    ("battery_voltage", pa.float64()), ("dtc_codes", pa.list_(pa.string())), ("tire_pressure_kpa", pa.list_(pa.float64())),
])
DTC_CODES = ("P0301", "P0420", "P0171", "P0442", "P0128", "P0562", "C0035", "B1000", "U0100")
CATALOG_CHANGE_SERVICES = (0, 6)   # oil change and brake pads get a price change mid-run
CATALOG_PRICE_FACTOR = 1.06


def _ts(values: np.ndarray) -> pa.Array:
    """int64 microseconds (-1: null) to timestamp[us, UTC]."""
    values = np.asarray(values, dtype=np.int64)
    return pa.array(values, type=pa.int64(), mask=values < 0).cast(TS)


def _table(name: str, columns: dict) -> pa.Table:
    schema = SCHEMAS[name]
    arrays = [columns[f.name] if isinstance(columns[f.name], pa.Array) else pa.array(columns[f.name], type=f.type) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


def catalog_change_day(world: World) -> int | None:
    return world.days // 2 if world.days > 1 else None


class OpsExtracts:
    def __init__(self, world: World, jobs: Jobs, part_usage: PartUsage):
        self.w, self.j = world, jobs
        used = part_usage.used
        self.part_job, self.part_index, self.part_quantity = (
            part_usage.job[used], part_usage.part[used], part_usage.quantity[used])
        self.job_id = np.array(job_ids(np.arange(len(jobs))), dtype=object)
        self.customer_id = np.array(world.customer_id, dtype=object)
        self.technician_id = np.array(world.technician_id, dtype=object)
        self.vin = np.array(world.vin, dtype=object)
        self.service_id = np.array([s[0] for s in SERVICES], dtype=object)

    def day(self, d: int) -> dict[str, pa.Table]:
        w, j = self.w, self.j
        day0, day1 = w.day_start(d), w.day_start(d + 1)
        first = d == 0
        out: dict[str, pa.Table] = {}

        def changed(*times):
            hit = np.zeros(len(times[0]), dtype=bool)
            for t in times:
                hit |= (t >= day0) & (t < day1)
            return hit

        def upto(t):  # a transition visible at the end of the day
            return np.where((t >= 0) & (t < day1), t, -1)

        # customers
        created, change = w.customer_created_us, w.customer_email_change_us
        sel = np.flatnonzero((created < day1) & ((first) | changed(created, change)))
        email_changed = (change[sel] >= 0) & (change[sel] < day1)
        out["customers"] = _table("customers", {
            "customer_id": self.customer_id[sel].tolist(),
            "email": [w.customer_new_email[i] if c else w.customer_email[i] for i, c in zip(sel, email_changed)],
            "full_name": [w.customer_name[i] for i in sel],
            "region": [REGIONS[r] for r in w.customer_region[sel]],
            "segment": [SEGMENTS[s] for s in w.customer_segment[sel]],
            "created_at": _ts(created[sel]),
            "updated_at": _ts(np.maximum(created[sel], upto(change[sel]))),
        })
        # vehicles
        vc = w.vehicle_created_us
        sel = np.flatnonzero((vc < day1) & (first | changed(vc)))
        out["vehicles"] = _table("vehicles", {
            "vin": self.vin[sel].tolist(), "customer_id": self.customer_id[w.vehicle_customer[sel]].tolist(),
            "make": [w.vehicle_make[i] for i in sel], "model": [w.vehicle_model[i] for i in sel],
            "model_year": w.vehicle_year[sel], "fuel_type": [w.vehicle_fuel[i] for i in sel],
            "created_at": _ts(vc[sel]), "updated_at": _ts(vc[sel]),
        })
        # technicians
        promoted = w.technician_promoted_us
        sel = np.flatnonzero(first | changed(promoted))
        bumped = (promoted[sel] >= 0) & (promoted[sel] < day1)
        out["technicians"] = _table("technicians", {
            "technician_id": self.technician_id[sel].tolist(), "full_name": [w.technician_name[i] for i in sel],
            "region": [REGIONS[r] for r in w.technician_region[sel]],
            "skill_level": (w.technician_skill[sel] + bumped).astype(np.int64),
            "hired_at": _ts(w.technician_hired_us[sel]),
            "updated_at": _ts(np.maximum(w.technician_hired_us[sel], upto(promoted[sel]))),
        })
        # jobs
        times = (j.created_us, j.assigned_us, j.started_us, j.completed_us, j.cancelled_us)
        sel = np.flatnonzero((j.created_us < day1) & (first | changed(*times)))
        seen = [upto(t[sel]) for t in times]
        stacked = np.vstack(seen)
        latest = stacked.argmax(axis=0)
        status = np.array(["scheduled", "assigned", "in_progress", "completed", "cancelled"], dtype=object)[latest]
        out["jobs"] = _table("jobs", {
            "job_id": self.job_id[sel].tolist(), "customer_id": self.customer_id[j.customer[sel]].tolist(),
            "vin": self.vin[j.vehicle[sel]].tolist(), "technician_id": self.technician_id[j.technician[sel]].tolist(),
            "service_id": self.service_id[j.service[sel]].tolist(), "status": status.tolist(),
            "scheduled_for": _ts(j.scheduled_for_us[sel]), "assigned_at": _ts(seen[1]), "started_at": _ts(seen[2]),
            "completed_at": _ts(seen[3]), "cancelled_at": _ts(seen[4]), "created_at": _ts(j.created_us[sel]),
            "updated_at": _ts(stacked.max(axis=0)),
        })
        # invoices
        issued = j.invoice_issued_us
        sel = np.flatnonzero((issued >= 0) & (issued < day1) & (first | changed(issued, j.invoice_paid_us, j.invoice_void_us)))
        paid, void = upto(j.invoice_paid_us[sel]), upto(j.invoice_void_us[sel])
        out["invoices"] = _table("invoices", {
            "invoice_id": ["inv_" + x[4:] for x in self.job_id[sel]], "job_id": self.job_id[sel].tolist(),
            "customer_id": self.customer_id[j.customer[sel]].tolist(), "amount": j.invoice_amount[sel].astype(np.float64),
            "currency": ["USD"] * len(sel),
            "status": np.where(void >= 0, "void", np.where(paid >= 0, "paid", "issued")).tolist(),
            "issued_at": _ts(issued[sel]), "paid_at": _ts(paid),
            "updated_at": _ts(np.maximum(issued[sel], np.maximum(paid, void))),
        })
        # parts used, reported when the job is completed
        done = j.completed_us[self.part_job]
        sel = np.flatnonzero((done >= day0) & (done < day1))
        job_of, part_ids = self.job_id[self.part_job[sel]], [w.part_rows[k][0] for k in self.part_index[sel]]
        out["job_parts"] = _table("job_parts", {
            "job_part_id": [f"{a}:{b}" for a, b in zip(job_of, part_ids)], "job_id": job_of.tolist(),
            "part_id": part_ids, "quantity": self.part_quantity[sel], "used_at": _ts(done[sel]), "updated_at": _ts(done[sel]),
        })
        # catalogs: the initial state, and a mid-run price change
        change_day = catalog_change_day(w)
        catalog_epoch = w.start_us - 30 * DAY_US
        if first or d == change_day:
            rows = range(len(SERVICES)) if first else CATALOG_CHANGE_SERVICES
            changed_now = d == change_day
            out["service_catalog"] = _table("service_catalog", {
                "service_id": [SERVICES[i][0] for i in rows], "name": [SERVICES[i][1] for i in rows],
                "kind": [SERVICES[i][2] for i in rows],
                "price": [round(SERVICES[i][3] * (CATALOG_PRICE_FACTOR if changed_now and i in CATALOG_CHANGE_SERVICES else 1.0), 2) for i in rows],
                "margin": [SERVICES[i][4] for i in rows], "duration_min": [SERVICES[i][5] for i in rows],
                "updated_at": _ts(np.array([day0 + 6 * HOUR_US if changed_now and i in CATALOG_CHANGE_SERVICES else catalog_epoch for i in rows])),
            })
            parts = w.part_rows if first else [p for p in w.part_rows if p[5] in {SERVICES[i][0] for i in CATALOG_CHANGE_SERVICES}]
            bump = changed_now and not first
            out["parts_catalog"] = _table("parts_catalog", {
                "part_id": [p[0] for p in parts], "name": [p[1] for p in parts], "category": [p[2] for p in parts],
                "unit_cost": [p[3] for p in parts],
                "unit_price": [round(p[4] * (CATALOG_PRICE_FACTOR if bump else 1.0), 2) for p in parts],
                "service_id": [p[5] for p in parts],
                "updated_at": _ts(np.full(len(parts), day0 + 6 * HOUR_US if bump else catalog_epoch)),
            })
        return {name: table for name, table in out.items() if table.num_rows}


class Telemetry:
    """Vehicle state carried from day to day: odometer, last oil change, battery and tires."""

    def __init__(self, world: World, jobs: Jobs):
        rng = ids.rng_for(world.seed, ids.TELEMETRY)
        self.w, self.j = world, jobs
        nv = len(world.vin)
        start_year = np.datetime64(world.start_us, "us").astype("datetime64[Y]").astype(int) + 1970
        age = np.maximum(start_year - world.vehicle_year, 0) + 0.5
        fleet = world.customer_segment[world.vehicle_customer] == 1
        self.connected = rng.random(nv) < 0.8
        self.odometer = age * 15000 * rng.uniform(0.6, 1.4, nv) * np.where(fleet, 2.0, 1.0)
        self.daily_km = np.where(fleet, 150.0, 40.0) * rng.lognormal(0, 0.4, nv)
        self.oil_changed_at_km = self.odometer - rng.uniform(0, 10000, nv)
        self.electric = np.array([f == "electric" for f in world.vehicle_fuel])
        self.vehicle_age = np.maximum(start_year - world.vehicle_year, 0)
        self.weak_battery = rng.random(nv) < 0.05
        self.battery = np.where(self.weak_battery, rng.uniform(11.9, 12.2, nv), rng.uniform(12.4, 12.75, nv))
        self.tire_base = rng.uniform(228, 245, nv)
        self.leaking = np.where(rng.random(nv) < 0.03, rng.integers(0, 4, nv), -1)
        self.leak_kpa = np.zeros(nv)
        oil = (jobs.service == OIL_CHANGE_SERVICE) & (jobs.completed_us >= 0)
        self.oil_job_vehicle, self.oil_job_done = jobs.vehicle[oil], jobs.completed_us[oil]
        self.vin = np.array(world.vin, dtype=object)

    def battery_on_day(self, vehicle: np.ndarray, day: np.ndarray) -> np.ndarray:
        """The true battery voltage (before measurement noise) on a run day; weak batteries fade daily."""
        return self.battery[vehicle] - np.where(self.weak_battery[vehicle], 0.01 * day, 0)

    def day(self, d: int) -> pa.Table:
        w = self.w
        rng = ids.rng_for(w.seed, ids.TELEMETRY, d)
        day0, day1 = w.day_start(d), w.day_start(d + 1)
        nv = len(self.vin)
        # Oil changes finished the day before reset the oil life.
        done = (self.oil_job_done >= day0 - DAY_US) & (self.oil_job_done < day0)
        self.oil_changed_at_km[self.oil_job_vehicle[done]] = self.odometer[self.oil_job_vehicle[done]]
        km_today = self.daily_km * rng.lognormal(0, 0.5, nv)
        k = rng.poisson(1.5, nv) * (self.connected & (w.vehicle_created_us < day0))
        veh = np.repeat(np.arange(nv), k)
        frac = rng.random(len(veh))
        order = np.lexsort((frac, veh))
        veh, frac = veh[order], frac[order]
        n = len(veh)
        odo = np.round(self.odometer[veh] + km_today[veh] * frac, 1)
        oil = np.clip(100 - (odo - self.oil_changed_at_km[veh]) / 100.0, 0, 100).round(1)
        battery = np.round(self.battery_on_day(veh, d) + rng.normal(0, 0.08, n), 2)
        has_dtc = rng.random(n) < np.where(battery < 12.0, 0.4, 0.04)
        first_code = np.where(battery < 12.0, DTC_CODES.index("P0562"), rng.integers(0, len(DTC_CODES), n))
        second = rng.random(n) < 0.3
        second_code = rng.integers(0, len(DTC_CODES), n)
        dtc = [([DTC_CODES[a]] + ([DTC_CODES[b]] if s and b != a else [])) if h else []
               for h, a, s, b in zip(has_dtc, first_code, second, second_code)]
        tires = self.tire_base[veh][:, None] + rng.normal(0, 3, (n, 4))
        leak_tire = self.leaking[veh]
        tires[np.arange(n)[leak_tire >= 0], leak_tire[leak_tire >= 0]] -= self.leak_kpa[veh][leak_tire >= 0]
        tires = np.round(tires, 1)
        self.odometer += km_today
        self.leak_kpa += np.where(self.leaking >= 0, 2.0, 0.0)
        observed = day0 + (frac * (day1 - day0)).astype(np.int64)
        return pa.Table.from_arrays([
            pa.array(self.vin[veh].tolist(), type=pa.string()), _ts(observed), pa.array(odo, type=pa.float64()),
            pa.array(oil, type=pa.float64(), mask=self.electric[veh]), pa.array(battery, type=pa.float64()),
            pa.array(dtc, type=pa.list_(pa.string())), pa.array(tires.tolist(), type=pa.list_(pa.float64())),
        ], schema=TELEMETRY_SCHEMA)
