"""A running gateway against a simulated site, for the end-to-end gateway tests.

``async with running_gateway(tmp_path, kind=..., lanes=[...], rules_toml=...) as gw:`` builds
a SimSite (pty QR scanners, Modbus turnstile simulators on loopback, keys, gateway.toml),
starts GatewayService in-process and waits until every device is connected. ``gw.scan(lane,
text)`` puts a scan on the lane's pty and returns what the journal then holds for it (the scan
row, its alert rows and, for an allowed scan at a turnstile, the passage row). HTTP helpers
read /health, /status and /metrics over loopback.

Identity builders make document numbers and machine-readable zones with valid check digits
(PRC resident ID: GB 11643 MOD 11-2; passport: ICAO 9303 TD3); codes are issued with real
times, since the gateway verifies them against the wall clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import time
import zlib
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import cbor2

from suishen.demo.simsite import LaneSpec, SimSite
from suishen.gateway.config import load_config
from suishen.gateway.journal import JournalRow
from suishen.gateway.lists import WatchEntry, watchlist_body
from suishen.gateway.records import SiteKind
from suishen.gateway.service import GatewayService
from suishen.protocol import base45
from suishen.protocol.bundles import seal_bundle
from suishen.protocol.codes import Identity
from suishen.protocol.identity.cnid import cnid_check_digit
from suishen.protocol.identity.mrz import mrz_check_digit
from suishen.protocol.person import person_key

WAIT_S = 5.0  # longest wait for a journal row or a device to come up
POLL_S = 0.005

# --------------------------------------------------------------------------- identities


def cnid(birth: dt.date, sequence: str = "123", region: str = "110105") -> str:
    """An 18-character PRC resident ID number with a valid MOD 11-2 check digit."""
    body = f"{region}{birth:%Y%m%d}{sequence}"
    return body + cnid_check_digit(body)


def _mrz_field(text: str, width: int) -> str:
    return text.upper().replace(" ", "<").ljust(width, "<")[:width]


def td3_mrz(
    *,
    number: str,
    nationality: str,
    surname: str,
    given: str,
    birth: dt.date,
    expiry: dt.date,
    sex: str = "M",
) -> str:
    """A passport MRZ (ICAO 9303 TD3, 2 x 44) run together on one line, every check digit
    correct (as a desk document reader sends it after a scanner's line framing)."""
    line1 = _mrz_field(f"P<{nationality}{surname}<<{given}", 44)
    doc = _mrz_field(number, 9)
    born, expires = f"{birth:%y%m%d}", f"{expiry:%y%m%d}"
    personal = _mrz_field("", 14)
    parts = [
        doc,
        str(mrz_check_digit(doc)),
        nationality,
        born,
        str(mrz_check_digit(born)),
        sex,
        expires,
        str(mrz_check_digit(expires)),
        personal,
        "<",  # an empty personal number may carry a filler as its check digit
    ]
    line2 = "".join(parts)
    composite = line2[0:10] + line2[13:20] + line2[21:43]
    line2 += str(mrz_check_digit(composite))
    assert len(line1) == len(line2) == 44
    return line1 + line2


def ric(idn: str, *, status: str = "G", dob: str = "1985-05-05", name: str = "王小明") -> Identity:
    """A resident's Suishen identity (the name is fixed test data, never logged)."""
    return Identity(idt="RIC", idn=idn, nat="CHN", nm=name, dob=dob, st=status)


def tamper(code: str) -> str:
    """The same code with one bit of its COSE signature flipped (a forged code)."""
    prefix, _, body = code.partition(":")
    cose = bytearray(zlib.decompress(base45.decode(body)))
    cose[-1] ^= 0x01  # the signature is the COSE_Sign1's last element
    return f"{prefix}:{base45.encode(zlib.compress(bytes(cose), 9))}"


def cti_of(code: str) -> str:
    """The hex code id (claim 7) of a code, as the journal stores it."""
    cose = cbor2.loads(zlib.decompress(base45.decode(code.partition(":")[2])))
    message = cose.value if isinstance(cose, cbor2.CBORTag) else cose
    claims = cbor2.loads(message[2])
    return bytes(claims[7]).hex()


# --------------------------------------------------------------------------- the gateway


@dataclass(frozen=True, slots=True)
class ScanResult:
    """What the journal holds for one scan."""

    row: JournalRow
    alerts: tuple[JournalRow, ...] = ()
    passage: JournalRow | None = None

    @property
    def verdict(self) -> str | None:
        return self.row.verdict

    @property
    def reason(self) -> str | None:
        return self.row.reason

    def alert_kinds(self) -> list[str]:
        return [alert_detail(a)["kind"] for a in self.alerts]


def alert_detail(row: JournalRow) -> dict[str, Any]:
    """The JSON detail of an alert row: kind, route, detail, level."""
    assert row.kind == "alert"
    assert row.detail is not None
    detail: dict[str, Any] = json.loads(row.detail)
    return detail


@dataclass(slots=True)
class RunningGateway:
    site: SimSite
    service: GatewayService
    http: aiohttp.ClientSession
    cursor: int = 0  # highest journal seq read so far
    rows: list[JournalRow] = field(default_factory=list)  # every row read, in seq order
    consumed: set[int] = field(default_factory=set)  # seqs next_result() has handed out
    reading: asyncio.Lock = field(default_factory=asyncio.Lock)

    # ----- people and codes

    def code(self, identity: Identity, *, iat: float | None = None, ttl_s: int = 120) -> str:
        return self.site.code(identity, iat=int(time.time() if iat is None else iat), ttl_s=ttl_s)

    def key(self, idt: str, idn: str, nat: str | None = None) -> str:
        """The person key the gateway computes. The pepper is what the gateway reads from the
        environment variable its config names (SimSite.pepper is the raw secret; the variable
        holds its base64 text, which the gateway takes as the pepper's bytes)."""
        pepper = self.service.config.privacy.read_pepper(self.site.environ)
        return person_key(pepper, idt, idn, nat)

    # ----- lists

    def bundle(self, kind: str, body: dict[str, Any], *, version: int = 1) -> bytes:
        return seal_bundle(
            kind=kind,
            version=version,
            issued_at=int(time.time()),
            body=body,
            key=self.site.bundle_key,
        )

    def write_bundle(self, kind: str, body: dict[str, Any], *, version: int = 1) -> None:
        """Write a last-known-good bundle file, which the gateway loads when it starts."""
        path = self.service.lists.path(kind)
        assert path is not None
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.bundle(kind, body, version=version))

    def install_watchlist(self, entries: Iterable[tuple[str, WatchEntry]], version: int) -> int:
        """Install a signed watchlist while the gateway runs (as the sync layer does)."""
        data = self.bundle("watchlist", watchlist_body(entries), version=version)
        return self.service.lists.install("watchlist", data)

    # ----- scanning

    async def scan(self, lane_id: str, text: str, *, timeout_s: float = WAIT_S) -> ScanResult:
        """Scan `text` at a lane; return its journal rows once they are all durable."""
        await self.site.scan(lane_id, text)
        return await self.next_result(lane_id, timeout_s=timeout_s)

    async def send_raw(self, lane_id: str, data: bytes) -> None:
        """Put raw bytes on a lane's scanner wire (framing suffix included by the caller)."""
        await self.site.lanes[lane_id].scanner.send_raw(data)

    async def next_result(self, lane_id: str, *, timeout_s: float = WAIT_S) -> ScanResult:
        """Wait for the next scan row of `lane_id` after the cursor (and its passage)."""
        async with asyncio.timeout(timeout_s):
            scan = await self._wait_row(lambda r: r.kind == "scan" and r.lane_id == lane_id)
            alerts = tuple(r for r in self.rows if r.kind == "alert" and r.scan_seq == scan.seq)
            passage = None
            turnstile = self.site.lanes[lane_id].turnstile is not None
            if scan.verdict == "allow" and turnstile:
                passage = await self._wait_row(
                    lambda r: r.kind == "passage" and r.scan_seq == scan.seq
                )
        return ScanResult(row=scan, alerts=alerts, passage=passage)

    async def _wait_row(self, match: Callable[[JournalRow], bool]) -> JournalRow:
        while True:
            for row in self.rows:
                if row.seq not in self.consumed and match(row):
                    self.consumed.add(row.seq)
                    return row
            if not await self.refresh():
                await asyncio.sleep(POLL_S)

    async def refresh(self) -> bool:
        """Read the journal rows written since the last read; False when there were none."""
        async with self.reading:  # lanes may be waited on concurrently
            fresh = await self.service.journal.read_unsynced(self.cursor)
            self.rows.extend(fresh)
            if fresh:
                self.cursor = fresh[-1].seq
            return bool(fresh)

    # ----- HTTP

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.service.http_port}{path}"

    async def status(self) -> dict[str, Any]:
        async with self.http.get(self.url("/status")) as response:
            assert response.status == 200
            body: dict[str, Any] = await response.json()
            return body

    async def health(self) -> tuple[int, dict[str, Any]]:
        async with self.http.get(self.url("/health")) as response:
            body: dict[str, Any] = await response.json()
            return response.status, body

    async def metrics(self) -> str:
        async with self.http.get(self.url("/metrics")) as response:
            assert response.status == 200
            return await response.text()

    async def occupancy(self, zone: str = "main") -> int:
        return int((await self.status())["occupancy"][zone])


async def _wait_devices_up(service: GatewayService) -> None:
    async with asyncio.timeout(WAIT_S):
        while True:
            status = service.status()
            states = [
                device["state"] for lane in status["lanes"] for device in lane["devices"].values()
            ]
            if states and all(state == "connected" for state in states):
                return
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def running_gateway(
    root: Path,
    *,
    kind: SiteKind = SiteKind.BUILDING,
    lanes: list[LaneSpec] | None = None,
    rules_toml: str = "",
    extra_toml: str = "",
    before_start: Callable[[RunningGateway], None] | None = None,
    edit_config: Callable[[str], str] | None = None,
) -> AsyncIterator[RunningGateway]:
    """A SimSite and a GatewayService running against it, every device connected.
    `extra_toml` is appended to its config (e.g. a [display] section); `before_start` runs
    before the gateway starts (e.g. to write last-known-good bundles); `edit_config` rewrites
    the config text first (settings SimSite does not write)."""
    site = await SimSite.create(
        root, kind=kind, lanes=lanes, rules_toml=rules_toml, extra_toml=extra_toml
    )
    if edit_config is not None:
        text = site.config_path.read_text(encoding="utf-8")
        site.config_path.write_text(edit_config(text), encoding="utf-8")
    try:
        service = GatewayService(load_config(site.config_path), environ=site.environ)
        async with aiohttp.ClientSession() as http:
            gw = RunningGateway(site=site, service=service, http=http)
            if before_start is not None:
                before_start(gw)
            task = asyncio.create_task(service.run())
            try:
                async with asyncio.timeout(WAIT_S):
                    await service.wait_ready()
                await _wait_devices_up(service)
                yield gw
            finally:
                service.stop()
                async with asyncio.timeout(WAIT_S):
                    await task
    finally:
        await site.aclose()


__all__ = [
    "RunningGateway",
    "ScanResult",
    "alert_detail",
    "cnid",
    "cti_of",
    "ric",
    "running_gateway",
    "tamper",
    "td3_mrz",
]
