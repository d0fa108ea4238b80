"""The hub's metrics (Prometheus text, protocol/prometheus.py) and its health (issue 14).

One HubMetrics per hub process: the gateway listener's ingest handler counts batches, rows by
outcome, refusals by status and time per batch; callbacks read the pool's size and the signed
lists' versions when /metrics is scraped. The web listener serves them at /metrics and the
health at /health (central/web/views/ops.py): a hub is ``down`` (503) when its database does not
answer, else ``ok``.
"""

from __future__ import annotations

from collections.abc import Callable

import asyncpg
from aiohttp import web

from suishen import __version__
from suishen.protocol.prometheus import (
    CallbackGauge,
    Counter,
    Histogram,
    Registry,
)

INGEST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class HubMetrics:
    """Counters the ingest handler updates, and the registry /metrics renders."""

    def __init__(self) -> None:
        self.registry = Registry()
        add = self.registry.add
        self.batches = add(
            Counter(
                "suishen_hub_ingest_batches_total",
                "upload batches ingested, by gateway",
                ("gateway",),
            )
        )
        self.rows = add(
            Counter(
                "suishen_hub_ingest_rows_total",
                "rows of ingested batches by outcome (inserted, duplicate, rejected)",
                ("outcome",),
            )
        )
        self.refused = add(
            Counter(
                "suishen_hub_ingest_refused_total",
                "upload requests refused whole, by HTTP status",
                ("status",),
            )
        )
        self.latency = add(
            Histogram("suishen_hub_ingest_seconds", "time to ingest one batch", INGEST_BUCKETS)
        )
        add(
            CallbackGauge(
                "suishen_build_info",
                "the running version (always 1)",
                lambda: [((__version__,), 1)],
                ("version",),
            )
        )
        self._pool: asyncpg.Pool | None = None
        self._versions: Callable[[], dict[str, int]] | None = None
        add(
            CallbackGauge(
                "suishen_hub_pool_connections",
                "database pool connections (size, idle)",
                self._pool_samples,
                ("state",),
            )
        )
        add(
            CallbackGauge(
                "suishen_hub_bundle_version",
                "the current version of each signed list",
                self._version_samples,
                ("list",),
            )
        )

    def watch(self, pool: asyncpg.Pool, versions: Callable[[], dict[str, int]]) -> None:
        """Read the pool and the list versions from these (when the listener starts)."""
        self._pool, self._versions = pool, versions

    def _pool_samples(self) -> list[tuple[tuple[str, ...], float]]:
        pool = self._pool
        if pool is None:
            return []
        return [(("size",), pool.get_size()), (("idle",), pool.get_idle_size())]

    def _version_samples(self) -> list[tuple[tuple[str, ...], float]]:
        versions = self._versions() if self._versions is not None else {}
        return [((kind,), version) for kind, version in sorted(versions.items())]

    def render(self) -> str:
        return self.registry.render()


HUB_METRICS: web.AppKey[HubMetrics] = web.AppKey("hub_metrics", HubMetrics)
