"""Malformed uploads against the real hub app (mutual TLS, real PostgreSQL): never a 500.

A 500 is what the gateway's uploader retries forever, so every malformed shape must be refused
as the client's fault: a whole batch that cannot be read is a 4xx, a bad row is rejected by
seq in a 200 answer (the rest of the batch is stored), and nothing malformed reaches a table.
"""

from __future__ import annotations

import json

import asyncpg

from . import test_gateway_api as api
from .hubkit import alert_row, body, device_row, register, scan_row
from .test_gateway_api import Hub, count

layout = api.layout  # the listener's fixtures, shared with test_gateway_api
hub = api.hub


async def _post(hub: Hub, path: str, data: bytes) -> tuple[int, dict]:
    async with (
        hub.client("gw-a") as client,
        client.post(path, data=data, headers={"Content-Type": "application/json"}) as response,
    ):
        return response.status, await response.json()


def _raw(document: dict) -> bytes:
    return json.dumps(document).encode()


async def test_unhashable_kind_and_direction_are_rejected_rows(
    hub: Hub, db_pool: asyncpg.Pool
) -> None:
    """A list as a row's kind, an object as a scan's direction and a list as an alert's kind
    (inside detail) are rejected by seq; the good row of the same batch is stored."""
    await register(db_pool, "gw-a")
    alert = alert_row(4, 1)
    alert["detail"] = json.dumps({"kind": ["watchlist"], "route": "police"})
    rows = [scan_row(1), scan_row(2, kind=["scan"]), scan_row(3, direction={"in": 1}), alert]
    status, answer = await _post(hub, "/v1/ingest", _raw(body("gw-a", rows)))
    assert status == 200
    assert [r["seq"] for r in answer["rejected"]] == [2, 3, 4]
    assert answer["inserted"] == 1
    status, answer = await _post(hub, "/v1/alerts", _raw(body("gw-a", [alert])))
    assert (status, answer) == (200, {"stored": 0})
    assert await count(db_pool, "scans") == 1
    assert await count(db_pool, "alerts") == 0


async def test_deeply_nested_body_is_400(hub: Hub, db_pool: asyncpg.Pool) -> None:
    """A body nested 100,000 deep (and one just over the wire's bound inside a row) is a 400
    on both lanes, not a RecursionError."""
    await register(db_pool, "gw-a")
    deep = b"[" * 100_000 + b"]" * 100_000
    nested_row = json.dumps(body("gw-a", [scan_row(1, zone=[[[[[[["x"]]]]]]])])).encode()
    for path in ("/v1/ingest", "/v1/alerts"):
        for data in (deep, b'{"gateway_id": "gw-a", "rows": ' + deep + b"}", nested_row):
            status, answer = await _post(hub, path, data)
            assert status == 400, (path, data[:40])
            assert "depth" in answer["error"]
    assert await count(db_pool, "scans") == 0


async def test_deeply_nested_or_unstorable_detail_is_a_rejected_row(
    hub: Hub, db_pool: asyncpg.Pool
) -> None:
    """An alert whose detail is JSON text nested 1,500 deep, a device event whose detail holds
    NaN, a NUL or a lone surrogate: each is rejected by seq, the good rows are stored."""
    await register(db_pool, "gw-a")
    deep_alert = alert_row(2, 1)
    deep_alert["detail"] = "[" * 1500 + "]" * 1500
    nan_device = device_row(3)
    nan_device["detail"] = '{"level": NaN}'
    nul_device = device_row(4)
    nul_device["detail"] = json.dumps({"state": "a\x00b"})
    surrogate_scan = scan_row(5, masked_name="\ud800")
    rows = [scan_row(1), deep_alert, nan_device, nul_device, surrogate_scan, device_row(6)]
    status, answer = await _post(hub, "/v1/ingest", _raw(body("gw-a", rows)))
    assert status == 200
    assert [r["seq"] for r in answer["rejected"]] == [2, 3, 4, 5]
    assert answer["inserted"] == 2
    assert answer["high_water"] == 6


async def test_seq_beyond_bigint_is_400_naming_the_row(hub: Hub, db_pool: asyncpg.Pool) -> None:
    """seq = 2^63 (one past PostgreSQL's bigint) and a 5000-digit seq are 400s naming the row,
    on both lanes; 2^63 - 1 is a valid seq."""
    await register(db_pool, "gw-a")
    for bad in (2**63, 10**4000):
        for path, row in (("/v1/ingest", scan_row(1)), ("/v1/alerts", alert_row(1, 1))):
            document = body("gw-a", [row, dict(row, seq=bad)])
            status, answer = await _post(hub, path, _raw(document))
            assert (status, answer["row"]) == (400, 1)
    status, answer = await _post(hub, "/v1/ingest", _raw(body("gw-a", [scan_row(2**63 - 1)])))
    assert (status, answer["high_water"]) == (200, 2**63 - 1)


async def test_huge_or_odd_bundle_versions_are_400(hub: Hub, db_pool: asyncpg.Pool) -> None:
    """A 5000-digit If-None-Match and a 5000-digit or 19-digit ?after= are 400s; an ETag that
    is not a version is ignored (as if there were none)."""
    await register(db_pool, "gw-a")
    async with hub.client("gw-a") as client:
        for headers, params in (
            ({"If-None-Match": '"' + "9" * 5000 + '"'}, {}),
            ({}, {"after": "9" * 5000}),
            ({}, {"after": "9" * 19}),
        ):
            async with client.get("/v1/bundles/watchlist", headers=headers, params=params) as r:
                assert r.status == 400
        async with client.get("/v1/bundles/watchlist", headers={"If-None-Match": '"x1"'}) as r:
            assert r.status == 304
