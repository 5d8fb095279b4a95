"""The OEM maintenance network's API, simulated: ``OemWorld`` (a store of service orders) served by the generic
``simulator.partners.api.PartnerApiServer`` at ``/v1/service-orders``.

``OemWorld`` is deterministic for a seed: ``n_orders`` orders (records as contracts/partners/oem.odcs.yaml's
service_orders: a booking_ref for most, null for orders the dealer keyed in, and a service_date), then batches
of late updates (a new version with a later ``updated_at``, plus a few new orders) applied one per
``world.advance()``. ``world.truth()`` is every (order_id, version) ever published. The API serves only each
order's current version, so a connector sees every version only if it syncs between advances.

Faults, drift and the server are ``simulator.partners.api``'s; the names below are re-exported so the OEM
connector tests read as before.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from .api import (  # noqa: F401  (re-exported)
    DEFAULT_API_KEY,
    DRIFT_KINDS,
    Faults,
    PartnerApiServer,
    ServerStats,
    decode_cursor,
    drift,
    encode_cursor,
    iso,
    parse_iso,
)

ENDPOINT = "/v1/service-orders"
STATUSES = ("open", "scheduled", "in_progress", "completed", "invoiced", "cancelled")
CURRENCIES = ("EUR", "USD", "GBP")
VIN_ALPHABET = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"  # no I, O, Q
DEALER_KEYED_SHARE = 0.2  # orders the dealer keyed in without our booking id


class OemWorld:
    """Deterministic service orders and their late updates; a store for ``PartnerApiServer``."""

    id_fields = ("order_id",)
    version_field = "version"
    amount_field = "amount"

    def __init__(self, seed: int = 1, n_orders: int = 200, start: datetime | None = None, *,
                 update_batches: int = 3, update_share: float = 0.15, new_per_batch: int = 5):
        self.seed = seed
        self.start = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._orders: dict[str, dict] = {}
        self._truth: set[tuple[str, int]] = set()
        self._next_id = 1
        self._clock = self.start
        self.batches_applied = 0
        self._update_batches = update_batches
        self._update_share = update_share
        self._new_per_batch = new_per_batch
        span = timedelta(days=30)
        for _ in range(n_orders):
            created = self.start + timedelta(seconds=self._rng.randrange(int(span.total_seconds())))
            self._publish(self._new_order(created))
        self._clock = self.start + span

    def _new_order(self, created: datetime) -> dict:
        order_id = f"SO-{self.seed:03d}-{self._next_id:06d}"
        self._next_id += 1
        order = {
            "order_id": order_id,
            "vin": "".join(self._rng.choice(VIN_ALPHABET) for _ in range(17)),
            "status": self._rng.choice(STATUSES[:3]),
            "amount": str(Decimal(self._rng.randrange(1500, 250000)) / 100),
            "currency": self._rng.choice(CURRENCIES),
            "created_at": iso(created),
            "updated_at": iso(created + timedelta(seconds=self._rng.randrange(0, 3600))),
            "version": 1,
        }
        booked = self._rng.random() >= DEALER_KEYED_SHARE
        order["booking_ref"] = f"bk_{self.seed:03d}_{self._next_id - 1:06d}" if booked else None
        order["service_date"] = (created + timedelta(days=self._rng.randrange(0, 15))).date().isoformat()
        return order

    def _publish(self, order: dict) -> None:
        self._orders[order["order_id"]] = order
        self._truth.add((order["order_id"], order["version"]))

    def advance(self) -> int:
        """Apply the next batch of late updates (and a few new orders); returns how many versions it added."""
        with self._lock:
            if self.batches_applied >= self._update_batches:
                return 0
            self.batches_applied += 1
            batch_start = self._clock + timedelta(hours=1)
            self._clock = batch_start + timedelta(days=1)
            ids = sorted(self._orders)
            chosen = self._rng.sample(ids, max(1, int(len(ids) * self._update_share)))
            for order_id in chosen:
                old = self._orders[order_id]
                new = dict(old, version=old["version"] + 1,
                           updated_at=iso(batch_start + timedelta(seconds=self._rng.randrange(86400))))
                new["status"] = self._rng.choice(STATUSES[2:])
                if self._rng.random() < 0.5:
                    new["amount"] = str(Decimal(self._rng.randrange(1500, 250000)) / 100)
                self._publish(new)
            for _ in range(self._new_per_batch):
                self._publish(self._new_order(batch_start + timedelta(seconds=self._rng.randrange(86400))))
            return len(chosen) + self._new_per_batch

    def truth(self) -> set[tuple[str, int]]:
        with self._lock:
            return set(self._truth)

    def current(self) -> list[dict]:
        """Each order's current version, ordered by (updated_at, order_id)."""
        with self._lock:
            orders = [dict(o) for o in self._orders.values()]
        return sorted(orders, key=lambda o: (parse_iso(o["updated_at"]), o["order_id"]))


class OemApiServer(PartnerApiServer):
    """The OEM API: ``world`` served at ``/v1/service-orders``."""

    def __init__(self, world: OemWorld, faults: Faults | None = None, port: int = 0,
                 api_key: str = DEFAULT_API_KEY):
        super().__init__({ENDPOINT: world}, faults, port, api_key)
        self.world = world


@contextmanager
def serve(world: OemWorld, faults: Faults | None = None, port: int = 0,
          api_key: str = DEFAULT_API_KEY) -> Iterator[str]:
    """Run the API for the block; yields its base URL. Use ``OemApiServer`` to also see its stats."""
    with OemApiServer(world, faults, port, api_key) as server:
        yield server.base_url
