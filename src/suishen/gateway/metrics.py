"""The gateway's metrics primitives: protocol/prometheus.py (shared with the hub)."""

from suishen.protocol.prometheus import (
    LATENCY_BUCKETS,
    CallbackCounter,
    CallbackGauge,
    Counter,
    Gauge,
    Histogram,
    Registry,
)

__all__ = [
    "LATENCY_BUCKETS",
    "CallbackCounter",
    "CallbackGauge",
    "Counter",
    "Gauge",
    "Histogram",
    "Registry",
]
