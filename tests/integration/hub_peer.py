"""A strict protocol peer for the gateway's sync client: the hub's wire contract, no database.

An aiohttp server on 127.0.0.1 with the hub's mutual-TLS context.  It binds gateway_id to the
client certificate and validates every batch with the real suishen.sync.wire.parse_batch, so a
row the real hub would refuse is refused here too; rows are held in memory by seq.  Faults are
switched on per test: answers to send before the real handling (503, 429, 403, ...), "poison"
seqs that make a whole batch a 400 (with or without the row index), a smaller max_rows (413),
a high_water that lies, a slow ingest.  Bundles are served with long-poll like the hub's
GET /v1/bundles/{kind}?after=&wait=.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from suishen.sync import pki
from suishen.sync.wire import MAX_BODY_BYTES, MAX_ROWS, BatchError, parse_batch


@dataclass
class Request:
    path: str
    status: int
    seqs: list[int]
    at: float


@dataclass
class HubPeer:
    layout: pki.PkiLayout
    rows: dict[int, dict[str, Any]] = field(default_factory=dict)  # seq -> row (ingest)
    alerts: dict[int, dict[str, Any]] = field(default_factory=dict)  # seq -> row (fast lane)
    rejected: dict[int, str] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    answers: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # forced, in order
    alert_answers: list[int] = field(default_factory=list)
    poison: set[int] = field(default_factory=set)
    hint_row: bool = True
    max_rows: int = MAX_ROWS
    high_water_bonus: int = 0  # > 0: answer a high_water beyond anything held
    ingest_delay_s: float = 0.0
    duplicates: int = 0
    bundles: dict[str, tuple[int, bytes]] = field(default_factory=dict)  # kind -> newest
    bundle_requests: list[tuple[str, int]] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None
    _bundle_changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def ingest_requests(self) -> list[Request]:
        return [r for r in self.requests if r.path == "/v1/ingest"]

    async def start(self) -> None:
        app = web.Application(client_max_size=MAX_BODY_BYTES * 2)
        app[PEER] = self
        app.router.add_post("/v1/ingest", _ingest)
        app.router.add_post("/v1/alerts", _alerts)
        app.router.add_get("/v1/bundles/{kind}", _bundle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(
            self._runner,
            "127.0.0.1",
            self.port,
            ssl_context=pki.hub_ssl_context_for(self.layout),
            reuse_address=True,
        )
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def publish(self, kind: str, version: int, data: bytes) -> None:
        async with self._bundle_changed:
            self.bundles[kind] = (version, data)
            self._bundle_changed.notify_all()

    def held_high_water(self) -> int:
        return max([0, *self.rows, *self.rejected, *self.alerts])


PEER = web.AppKey("peer", HubPeer)


def _gateway(request: web.Request) -> str:
    peercert = request.transport.get_extra_info("peercert") if request.transport else None
    return pki.gateway_id_from_peercert(peercert)


def _seqs(document: Any) -> list[int]:
    rows = document.get("rows") if isinstance(document, dict) else None
    if not isinstance(rows, list):
        return []
    return [r["seq"] for r in rows if isinstance(r, dict) and isinstance(r.get("seq"), int)]


async def _ingest(request: web.Request) -> web.Response:
    hub = request.app[PEER]
    gateway_id = _gateway(request)
    body = await request.read()
    document = json.loads(body)
    seqs = _seqs(document)

    def answer(status: int, payload: dict[str, Any]) -> web.Response:
        hub.requests.append(Request("/v1/ingest", status, seqs, time.monotonic()))
        return web.json_response(payload, status=status)

    if hub.ingest_delay_s:
        await asyncio.sleep(hub.ingest_delay_s)
    if hub.answers:
        status, payload = hub.answers.pop(0)
        return answer(status, payload)
    if len(body) > MAX_BODY_BYTES:
        return answer(413, {"error": "body too large", "row": None})
    try:
        batch = parse_batch(document, bound_gateway_id=gateway_id, max_rows=hub.max_rows)
    except BatchError as exc:
        return answer(exc.status, {"error": str(exc), "row": exc.row})
    for index, seq in enumerate(seqs):
        if seq in hub.poison:
            return answer(
                400,
                {"error": f"row {index}: poisoned", "row": index if hub.hint_row else None},
            )
    rejected = dict(batch.rejected)
    inserted = 0
    for row in document["rows"]:
        seq = row["seq"]
        if seq in rejected:
            hub.rejected[seq] = rejected[seq]
        elif seq in hub.rows:
            hub.duplicates += 1
        else:
            hub.rows[seq] = row
            inserted += 1
    high_water = hub.held_high_water() + hub.high_water_bonus
    return answer(
        200,
        {
            "high_water": high_water,
            "inserted": inserted,
            "duplicates": len(seqs) - inserted - len(rejected),
            "rejected": [{"seq": s, "reason": r} for s, r in rejected.items()],
        },
    )


async def _alerts(request: web.Request) -> web.Response:
    hub = request.app[PEER]
    gateway_id = _gateway(request)
    document = await request.json()
    seqs = _seqs(document)
    if hub.alert_answers:
        status = hub.alert_answers.pop(0)
        hub.requests.append(Request("/v1/alerts", status, seqs, time.monotonic()))
        return web.json_response({"error": "forced", "row": None}, status=status)
    try:
        batch = parse_batch(document, bound_gateway_id=gateway_id)
    except BatchError as exc:
        return web.json_response({"error": str(exc), "row": exc.row}, status=exc.status)
    hub.requests.append(Request("/v1/alerts", 200, seqs, time.monotonic()))
    for row in document["rows"]:
        hub.alerts.setdefault(row["seq"], row)
    return web.json_response(
        {
            "high_water": hub.held_high_water(),
            "inserted": len(batch.alerts),
            "duplicates": 0,
            "rejected": [{"seq": s, "reason": r} for s, r in batch.rejected],
        }
    )


async def _bundle(request: web.Request) -> web.StreamResponse:
    hub = request.app[PEER]
    _gateway(request)
    kind = request.match_info["kind"]
    after = int(request.query.get("after", "0"))
    wait = float(request.query.get("wait", "0"))
    hub.bundle_requests.append((kind, after))

    def newer() -> bool:
        return kind in hub.bundles and hub.bundles[kind][0] > after

    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(wait), hub._bundle_changed:
            await hub._bundle_changed.wait_for(newer)
    if newer():
        version, data = hub.bundles[kind]
        return web.Response(
            body=data,
            content_type="application/cose",
            headers={"X-Bundle-Version": str(version)},
        )
    return web.Response(status=304)
