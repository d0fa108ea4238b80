"""Shared pieces of the hub tests: registered gateways, journal-like rows, upload bodies."""

from __future__ import annotations

import hashlib
import json
import time
import urllib.parse
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from suishen.central.store.gateways import pin_certificate
from suishen.sync import pki
from suishen.sync.wire import encode_batch

SITE = "site-a"
OTHER_SITE = "site-b"
NOW = time.time()  # rows carry real times so that they land in the template's partitions


def person(n: int) -> str:
    return hashlib.sha256(f"person-{n}".encode()).hexdigest()


async def register(
    con: asyncpg.Connection | asyncpg.Pool,
    gateway_id: str,
    site_id: str = SITE,
    *,
    kind: str = "building",
    enabled: bool = True,
    cert: Path | None = None,
) -> None:
    """Register a site (if new) and a gateway at it; pin ``cert`` (a PEM file) as its client
    certificate when given (without one the listener refuses the gateway)."""
    await con.execute(
        "INSERT INTO sites (site_id, kind) VALUES ($1, $2) ON CONFLICT DO NOTHING", site_id, kind
    )
    await con.execute(
        "INSERT INTO gateways (gateway_id, site_id, enabled) VALUES ($1, $2, $3)",
        gateway_id,
        site_id,
        enabled,
    )
    if cert is not None:
        await pin(con, gateway_id, cert)


async def pin(con: asyncpg.Connection | asyncpg.Pool, gateway_id: str, cert: Path) -> None:
    """Pin the certificate in ``cert`` (PEM) as the gateway's (as `suishen hub gateway add`)."""
    fingerprint = pki.fingerprint(pki.load_certificate(cert))
    if isinstance(con, asyncpg.Pool):
        async with con.acquire() as connection, connection.transaction():
            await pin_certificate(connection, gateway_id, fingerprint)
    else:
        async with con.transaction():
            await pin_certificate(con, gateway_id, fingerprint)


def scan_row(seq: int, *, site_id: str = SITE, ts: float | None = None, **over: Any) -> dict:
    row: dict[str, Any] = {
        "seq": seq,
        "ts": (NOW if ts is None else ts) + seq * 1e-3,
        "kind": "scan",
        "site_id": site_id,
        "lane_id": "lane-1",
        "direction": "in",
        "format": "SSC1",
        "verdict": "allow",
        "person_key": person(seq),
        "nationality": "CHN",
        "minor": False,
        "status": "G",
        "latency_us": 1200,
    }
    row.update(over)
    return row


def passage_row(seq: int, scan_seq: int, *, site_id: str = SITE) -> dict:
    return {
        "seq": seq,
        "ts": NOW + seq * 1e-3,
        "kind": "passage",
        "site_id": site_id,
        "lane_id": "lane-1",
        "scan_seq": scan_seq,
        "outcome": "passed",
        "person_key": person(scan_seq),
        "direction": "in",
    }


def alert_row(seq: int, scan_seq: int, *, route: str = "police", site_id: str = SITE) -> dict:
    return {
        "seq": seq,
        "ts": NOW + seq * 1e-3,
        "kind": "alert",
        "site_id": site_id,
        "lane_id": "lane-1",
        "scan_seq": scan_seq,
        "person_key": person(scan_seq),
        "detail": json.dumps(
            {"kind": "watchlist", "route": route, "level": "deny", "detail": "wanted"}
        ),
    }


def device_row(seq: int, *, site_id: str = SITE) -> dict:
    return {
        "seq": seq,
        "ts": NOW + seq * 1e-3,
        "kind": "device",
        "site_id": site_id,
        "lane_id": "lane-1",
        "detail": json.dumps({"device": "gate", "state": "down"}),
    }


def body(gateway_id: str, rows: list[dict]) -> dict[str, Any]:
    """The JSON document of an upload, as the uploader encodes it."""
    return encode_batch(gateway_id, rows)


def for_cli(dsn: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """``dsn`` without its password, for ``--dsn`` (a command line must not carry one); the
    password goes to the CLI in $SUISHEN_DB_PASSWORD, as an operator would pass it."""
    parts = urllib.parse.urlsplit(dsn)
    if parts.password is None:
        return dsn
    monkeypatch.setenv("SUISHEN_DB_PASSWORD", urllib.parse.unquote(parts.password))
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}@{host}" if user else host))
