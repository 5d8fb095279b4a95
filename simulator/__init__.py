"""Pitwall's outside world: a deterministic, seeded generator of the landing zone (Segment events,
Sentry crashes, OTLP traces, ops extracts, vehicle telemetry) with known truths in truth.json.

The product never imports this package, and this package imports nothing of the product.
Run it as `python -m simulator --help`; from Python, `simulator.generate(...)`.
"""
from .generate import Summary, generate, size_for_events

__all__ = ["generate", "size_for_events", "Summary"]
