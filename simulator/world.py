"""The world the apps live in: customers, vehicles, technicians, users and their devices, app
releases and their rollout, and the service and parts catalogs.

Times are int64 microseconds since the Unix epoch, UTC, everywhere in the simulator.
"""
from __future__ import annotations

import datetime as dt
import unicodedata
from dataclasses import dataclass

import numpy as np

from . import ids

US = 1_000_000
MINUTE_US = 60 * US
HOUR_US = 3_600 * US
DAY_US = 86_400 * US

PLATFORMS = ("ios", "android")
IOS, ANDROID = 0, 1
TECH, CUSTOMER = 0, 1  # app index


@dataclass(frozen=True)
class App:
    key: str
    app_id: str          # bundle id: Segment context.app.namespace, Sentry app_identifier and release prefix
    display_name: str    # Segment context.app.name
    service_prefix: str  # OTel service.name is "<prefix>-<platform>"
    role: str            # identify trait


APPS = (
    App("tech", "com.acme.tech", "Pitwall Tech", "tech-app", "technician"),
    App("customer", "com.acme.customer", "Pitwall", "customer-app", "customer"),
)


@dataclass(frozen=True)
class Release:
    version: str
    build: str
    ships_at_fraction: float  # position in the run's last two weeks where it ships (< 0: before the run)


RELEASES = (
    Release("3.3.0", "330", -1.0),
    Release("3.4.0", "340", 0.15),
    Release("3.4.1", "341", 0.40),
    Release("3.5.0", "350", 0.65),
)


# The timed plants (releases and their crash spike here, recall campaigns in partners/world.py) fall within the
# last two weeks of a longer world, as they do in a two-week one: a release's life, and so the weight of the
# spike in its crash-free rate, does not stretch with the world's length, and recalls are still open at its end.
PLANTED_WINDOW_DAYS = 14


def release_ship_day(release: Release, days: int) -> float:
    """The day (from the world's start, fractional) a release ships; negative: before the world."""
    if release.ships_at_fraction < 0:
        return -60.0
    window = min(days, PLANTED_WINDOW_DAYS)
    return days - window + release.ships_at_fraction * window


def release_name(app: int, release: int) -> str:
    r = RELEASES[release]
    return f"{APPS[app].app_id}@{r.version}+{r.build}"


# (model identifier, manufacturer, platform, Sentry device family)
DEVICE_MODELS = (
    ("iPhone16,1", "Apple", IOS, "iPhone"),
    ("iPhone15,2", "Apple", IOS, "iPhone"),
    ("iPhone14,5", "Apple", IOS, "iPhone"),
    ("iPhone17,3", "Apple", IOS, "iPhone"),
    ("Pixel 7", "Google", ANDROID, "Android"),
    ("Pixel 8 Pro", "Google", ANDROID, "Android"),
    ("SM-S918B", "samsung", ANDROID, "Android"),
    ("SM-A546B", "samsung", ANDROID, "Android"),
    ("moto g84 5G", "motorola", ANDROID, "Android"),
)
OS_NAMES = ("iOS", "Android")
OS_VERSIONS = (("17.5.1", "18.1", "18.2"), ("13", "14", "15"))
CARRIERS = ("T-Mobile", "Verizon", "AT&T")
LIBRARY_VERSIONS = ("2.4.0", "2.1.9")  # analytics-python: Segment, RudderStack
SEGMENT_LIB, RUDDER_LIB = 0, 1

REGIONS = ("north", "south", "east", "west")
# A time zone per region, with its standard UTC offset in hours (only used to shape daily activity).
REGION_TIMEZONES = ("America/Chicago", "America/Phoenix", "America/New_York", "America/Los_Angeles")
REGION_UTC_OFFSET_H = np.array([-6, -7, -5, -8])
LOCALES = ("en-US", "es-US", "en-CA", "fr-CA", "de-DE", "zh-CN", "vi-VN")
LOCALE_WEIGHTS = (0.78, 0.09, 0.04, 0.03, 0.02, 0.02, 0.02)
SEGMENTS = ("retail", "fleet")

# Device clocks that are off: ~3% of devices, by whole hours.
SKEWED_DEVICE_SHARE = 0.03
SKEW_HOURS_CHOICES = (3, -5, 2, -4, 6, -3)

FIRST_NAMES = (
    "James", "Maria", "Robert", "Linda", "Michael", "Sofía", "David", "Emily", "Daniel", "Olivia",
    "José", "Aisha", "Wei", "Priya", "Thomas", "Chloé", "Lucas", "Hannah", "Mateo", "Grace",
    "Ethan", "Zoë", "Noah", "Mia", "Liam", "Ava", "Omar", "Fatima", "Kenji", "Ingrid",
)
LAST_NAMES = (
    "Smith", "Johnson", "García", "Williams", "Brown", "Nguyễn", "Müller", "Davis", "Martínez", "Lee",
    "Wilson", "Anderson", "Taylor", "Thomas", "Moore", "Jackson", "Martin", "White", "López", "Harris",
    "Clark", "Lewis", "Walker", "Hall", "Young", "King", "Wright", "Scott", "Green", "Baker",
)

# make -> (WMI prefix of the VIN, models, fuel types by model)
VEHICLE_MAKES = (
    ("Ford", "1FT", (("F-150", "gasoline"), ("Transit", "diesel"), ("Escape", "hybrid"), ("Mustang Mach-E", "electric"))),
    ("Toyota", "JTD", (("Camry", "hybrid"), ("RAV4", "gasoline"), ("Tacoma", "gasoline"), ("Prius", "hybrid"))),
    ("Honda", "1HG", (("Civic", "gasoline"), ("CR-V", "gasoline"), ("Accord", "hybrid"))),
    ("Tesla", "5YJ", (("Model 3", "electric"), ("Model Y", "electric"))),
    ("Chevrolet", "1G1", (("Silverado", "gasoline"), ("Malibu", "gasoline"), ("Bolt EV", "electric"))),
    ("BMW", "WBA", (("X3", "gasoline"), ("330i", "gasoline"))),
    ("Hyundai", "KMH", (("Ioniq 5", "electric"), ("Tucson", "gasoline"))),
)
VIN_CHARS = np.frombuffer(b"ABCDEFGHJKLMNPRSTUVWXYZ0123456789", dtype=np.uint8)  # no I, O, Q

# service_id, name, kind, price, margin, duration_min
SERVICES = (
    ("svc_oil_change", "Oil change", "maintenance", 89.0, 0.45, 45),
    ("svc_tire_rotation", "Tire rotation", "maintenance", 49.0, 0.60, 30),
    ("svc_brake_inspection", "Brake inspection", "maintenance", 59.0, 0.55, 40),
    ("svc_multi_point_inspection", "Multi-point inspection", "maintenance", 39.0, 0.65, 30),
    ("svc_fluid_flush", "Coolant and fluid flush", "maintenance", 129.0, 0.50, 60),
    ("svc_battery_test", "Battery test", "maintenance", 29.0, 0.70, 20),
    ("svc_brake_pads", "Brake pad replacement", "repair", 289.0, 0.38, 90),
    ("svc_battery_replacement", "Battery replacement", "repair", 219.0, 0.35, 40),
    ("svc_alternator", "Alternator replacement", "repair", 549.0, 0.30, 150),
    ("svc_starter", "Starter replacement", "repair", 449.0, 0.30, 120),
    ("svc_suspension", "Suspension repair", "repair", 689.0, 0.28, 180),
    ("svc_diagnostics", "Diagnostics", "repair", 129.0, 0.50, 60),
    ("svc_wiper_blades", "Wiper blades", "upsell", 39.0, 0.60, 10),
    ("svc_cabin_filter", "Cabin air filter", "upsell", 59.0, 0.62, 15),
    ("svc_engine_air_filter", "Engine air filter", "upsell", 49.0, 0.60, 15),
    ("svc_tire_replacement", "Tire replacement (set of 4)", "upsell", 799.0, 0.22, 90),
)
# Relative frequency of each service as a booked job (upsells are mostly sold through estimates).
SERVICE_BOOKING_WEIGHTS = np.array([30, 10, 8, 6, 4, 5, 8, 6, 2, 2, 2, 10, 1, 1, 1, 4], dtype=float)
ESTIMATE_SERVICES = np.array([6, 7, 11, 12, 13, 14, 15])  # what a technician proposes on site
OIL_CHANGE_SERVICE = 0

PART_CATEGORIES = ("fluids", "filters", "brakes", "electrical", "tires", "suspension", "wipers", "labor_kit")


def job_type(service: int) -> str:
    return SERVICES[service][0].removeprefix("svc_")


@dataclass
class World:
    seed: int
    start_us: int
    days: int
    # customers
    customer_id: list[str]
    customer_email: list[str]
    customer_name: list[str]
    customer_region: np.ndarray
    customer_segment: np.ndarray
    customer_created_us: np.ndarray
    customer_email_change_us: np.ndarray  # -1: never changes during the run
    customer_new_email: list[str]
    # vehicles
    vin: list[str]
    vehicle_customer: np.ndarray
    vehicle_make: list[str]
    vehicle_model: list[str]
    vehicle_year: np.ndarray
    vehicle_fuel: list[str]
    vehicle_created_us: np.ndarray
    # technicians
    technician_id: list[str]
    technician_name: list[str]
    technician_region: np.ndarray
    technician_skill: np.ndarray
    technician_hired_us: np.ndarray
    technician_promoted_us: np.ndarray  # -1: no skill change during the run
    # users: customers first (user u = customer u), then technicians (user N + t = technician t)
    user_id: list[str]
    user_app: np.ndarray
    user_platform: np.ndarray
    user_region: np.ndarray
    user_locale: np.ndarray
    user_active_from_us: np.ndarray
    user_first_device: np.ndarray
    user_device_count: np.ndarray
    # devices
    device_user: np.ndarray
    device_id: np.ndarray        # S36
    device_install_id: np.ndarray  # S36, OTel service.instance.id of the app install
    device_model: np.ndarray
    device_os_version: np.ndarray  # index into OS_VERSIONS[platform]
    device_library: np.ndarray
    device_carrier: np.ndarray
    device_skew_us: np.ndarray
    device_adopts_us: np.ndarray  # (devices, releases): when the device runs each release
    release_us: np.ndarray
    # catalogs
    part_rows: list[tuple]

    @property
    def end_us(self) -> int:
        return self.start_us + self.days * DAY_US

    @property
    def n_customers(self) -> int:
        return len(self.customer_id)

    @property
    def n_technicians(self) -> int:
        return len(self.technician_id)

    def day_start(self, day: int) -> int:
        return self.start_us + day * DAY_US

    def version_at(self, devices: np.ndarray, t_us: np.ndarray) -> np.ndarray:
        """Release index each device runs at time t (the newest release it has installed)."""
        version = np.zeros(len(devices), dtype=np.int8)
        for r in range(1, len(RELEASES)):
            version = np.where(self.device_adopts_us[devices, r] <= t_us, r, version).astype(np.int8)
        return version

    @property
    def spike_day(self) -> int:
        """Day of the planted crash spike: halfway between the 3.4.1 and 3.5.0 rollouts."""
        mid = (release_ship_day(RELEASES[2], self.days) + release_ship_day(RELEASES[3], self.days)) / 2
        return int(min(max(np.floor(mid), 0), self.days - 1))


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower().replace(" ", "")


def _vins(rng: np.random.Generator, wmi: list[str]) -> list[str]:
    body = VIN_CHARS[rng.integers(0, len(VIN_CHARS), size=(len(wmi), 14))]
    tails = body.view("S14").ravel()
    vins = [w + t.decode() for w, t in zip(wmi, tails)]
    seen: set[str] = set()
    for i, v in enumerate(vins):  # collisions are astronomically rare; keep VINs unique anyway
        while v in seen:
            v = v[:-1] + "0123456789"[(int(v[-1], 36) + 1) % 10]
        seen.add(v)
        vins[i] = v
    return vins


def build_world(seed: int, start: dt.date, days: int, customers: int, technicians: int) -> World:
    rng = ids.rng_for(seed, ids.WORLD)
    start_us = int(dt.datetime(start.year, start.month, start.day, tzinfo=dt.UTC).timestamp()) * US
    end_us = start_us + days * DAY_US
    n, m = customers, technicians

    # Customers: most exist before the run, ~8% sign up during it.
    c_region = rng.integers(0, len(REGIONS), n).astype(np.int8)
    c_segment = (rng.random(n) < 0.15).astype(np.int8)
    signs_up = rng.random(n) < 0.08
    c_created = np.where(
        signs_up,
        start_us + (rng.random(n) * (end_us - start_us)).astype(np.int64),
        start_us - (rng.random(n) * 3 * 365 * DAY_US).astype(np.int64) - DAY_US,
    )
    first = rng.integers(0, len(FIRST_NAMES), n)
    last = rng.integers(0, len(LAST_NAMES), n)
    c_name = [f"{FIRST_NAMES[a]} {LAST_NAMES[b]}" for a, b in zip(first, last)]
    c_ids = [f"cust_{i + 1:06d}" for i in range(n)]
    c_email = [f"{_ascii(FIRST_NAMES[a])}.{_ascii(LAST_NAMES[b])}{i + 1}@example.com" for i, (a, b) in enumerate(zip(first, last))]
    changes = rng.random(n) < 0.04
    c_change = np.where(changes, start_us + (rng.random(n) * (end_us - start_us)).astype(np.int64), -1)
    c_change = np.where(c_change > c_created, c_change, -1)
    c_new_email = [f"{_ascii(FIRST_NAMES[a])}{i + 1}@mail.example.org" for i, a in enumerate(first)]

    # Vehicles: retail customers own 1-2, fleets 3-8; added with the customer, a few later.
    per_customer = np.where(c_segment == 1, rng.integers(3, 9, n), 1 + (rng.random(n) < 0.3))
    v_customer = np.repeat(np.arange(n), per_customer)
    nv = len(v_customer)
    later = (rng.random(nv) < 0.03) & (np.arange(nv) != np.searchsorted(v_customer, v_customer))
    v_created = c_created[v_customer] + (rng.random(nv) * 20 * MINUTE_US).astype(np.int64)
    v_created = np.where(later, np.maximum(v_created, start_us + (rng.random(nv) * (end_us - start_us)).astype(np.int64)), v_created)
    make = rng.integers(0, len(VEHICLE_MAKES), nv)
    model_pick = rng.random(nv)
    v_make, v_model, v_fuel, wmi = [], [], [], []
    for mk, pick in zip(make, model_pick):
        name, prefix, models = VEHICLE_MAKES[mk]
        model, fuel = models[int(pick * len(models))]
        v_make.append(name)
        v_model.append(model)
        v_fuel.append(fuel)
        wmi.append(prefix)
    v_year = rng.integers(2012, start.year + 1, nv)
    vins = _vins(rng, wmi)

    # Technicians.
    t_region = rng.integers(0, len(REGIONS), m).astype(np.int8)
    t_skill = rng.integers(1, 6, m).astype(np.int8)
    t_hired = start_us - (rng.random(m) * 6 * 365 * DAY_US).astype(np.int64) - 30 * DAY_US
    tf = rng.integers(0, len(FIRST_NAMES), m)
    tl = rng.integers(0, len(LAST_NAMES), m)
    t_name = [f"{FIRST_NAMES[a]} {LAST_NAMES[b]}" for a, b in zip(tf, tl)]
    t_ids = [f"tech_{i + 1:04d}" for i in range(m)]
    promoted = (rng.random(m) < 0.05) & (t_skill < 5)
    t_promoted = np.where(promoted, start_us + (rng.random(m) * (end_us - start_us)).astype(np.int64), -1)

    # Users and devices: each user has one platform and 1-2 devices on it.
    nu = n + m
    u_app = np.concatenate([np.full(n, CUSTOMER), np.full(m, TECH)]).astype(np.int8)
    ios_share = np.where(u_app == CUSTOMER, 0.55, 0.45)
    u_platform = np.where(rng.random(nu) < ios_share, IOS, ANDROID).astype(np.int8)
    u_region = np.concatenate([c_region, t_region])
    u_locale = rng.choice(len(LOCALES), size=nu, p=LOCALE_WEIGHTS).astype(np.int8)
    u_active = np.concatenate([c_created, t_hired])
    u_devcount = 1 + (rng.random(nu) < 0.25)
    u_first = np.concatenate([[0], np.cumsum(u_devcount)[:-1]])
    d_user = np.repeat(np.arange(nu), u_devcount)
    nd = len(d_user)
    d_platform = u_platform[d_user]
    ios_models = np.array([i for i, mdl in enumerate(DEVICE_MODELS) if mdl[2] == IOS])
    android_models = np.array([i for i, mdl in enumerate(DEVICE_MODELS) if mdl[2] == ANDROID])
    d_model = np.where(
        d_platform == IOS,
        ios_models[rng.integers(0, len(ios_models), nd)],
        android_models[rng.integers(0, len(android_models), nd)],
    ).astype(np.int8)
    d_os = rng.integers(0, 3, nd).astype(np.int8)
    d_lib = rng.integers(0, 2, nd).astype(np.int8)
    d_carrier = rng.integers(0, len(CARRIERS), nd).astype(np.int8)
    skewed = rng.random(nd) < SKEWED_DEVICE_SHARE
    d_skew = np.where(skewed, np.array(SKEW_HOURS_CHOICES)[rng.integers(0, len(SKEW_HOURS_CHOICES), nd)] * HOUR_US, 0)
    d_id = ids.uuid_ids(rng, nd)
    d_install = ids.uuid_ids(rng, nd)

    # Release rollout: a device installs a release some time after it ships; ~15% of devices lag by a week or more.
    release_us = np.array(
        [start_us + int(release_ship_day(r, days) * DAY_US) for r in RELEASES],
        dtype=np.int64,
    )
    laggard = rng.random(nd) < 0.15
    lag_days = rng.exponential(1.6, size=(nd, len(RELEASES))) + np.where(laggard, rng.uniform(4, 12, nd), 0)[:, None]
    adopts = release_us[None, :] + (lag_days * DAY_US).astype(np.int64)
    adopts[:, 0] = release_us[0]

    # Parts: 2-4 per service.
    part_rows = []
    for s, (sid, sname, _kind, price, _margin, _dur) in enumerate(SERVICES):
        for k in range(int(rng.integers(2, 5))):
            cost = round(float(price) * float(rng.uniform(0.05, 0.35)), 2)
            part_rows.append(
                (f"prt_{len(part_rows) + 1:04d}", f"{sname} part {k + 1}", PART_CATEGORIES[s % len(PART_CATEGORIES)],
                 cost, round(cost * float(rng.uniform(1.3, 2.2)), 2), sid)
            )

    return World(
        seed=seed, start_us=start_us, days=days,
        customer_id=c_ids, customer_email=c_email, customer_name=c_name, customer_region=c_region,
        customer_segment=c_segment, customer_created_us=c_created.astype(np.int64),
        customer_email_change_us=c_change.astype(np.int64), customer_new_email=c_new_email,
        vin=vins, vehicle_customer=v_customer, vehicle_make=v_make, vehicle_model=v_model,
        vehicle_year=v_year.astype(np.int64), vehicle_fuel=v_fuel, vehicle_created_us=v_created.astype(np.int64),
        technician_id=t_ids, technician_name=t_name, technician_region=t_region, technician_skill=t_skill,
        technician_hired_us=t_hired.astype(np.int64), technician_promoted_us=t_promoted.astype(np.int64),
        user_id=c_ids + t_ids, user_app=u_app, user_platform=u_platform, user_region=u_region,
        user_locale=u_locale, user_active_from_us=u_active.astype(np.int64),
        user_first_device=u_first.astype(np.int64), user_device_count=u_devcount.astype(np.int64),
        device_user=d_user, device_id=d_id, device_install_id=d_install, device_model=d_model,
        device_os_version=d_os, device_library=d_lib, device_carrier=d_carrier,
        device_skew_us=d_skew.astype(np.int64), device_adopts_us=adopts, release_us=release_us,
        part_rows=part_rows,
    )
