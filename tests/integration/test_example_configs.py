"""The example configs in deploy/config/ served against the simulators, as shipped.

Each test copies one example into a temporary directory (without its [hub] table: the gateway
runs offline), makes what its relative paths name (an issuer and a trust list, the hub's
bundle and sealing public keys, the pepper, OSDP keys; all real, freshly generated), starts a
simulator on exactly the address each device setting of the loaded config names (serial
scanners behind a serial-to-Ethernet converter: a TCP scanner server; TCP line scanners that
connect to the gateway; Modbus turnstiles; UHPPOTE controllers; OSDP readers), runs
GatewayService in-process until /status shows every device connected, then lets a valid
person through every lane and checks that the gate simulator received the open command and
that the journal holds the allowed scan and its passage. One more test runs the example
office building as `python -m suishen gateway run` and stops it with SIGTERM.

The examples use fixed loopback ports, so these tests must not run in parallel with each
other (they do not: one process, one test at a time).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import os
import re
import secrets
import signal
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519

from suishen.demo.config_sims import Simulators, simulators
from suishen.demo.issuer import IssuerKey, build_trust_file, generate_issuer
from suishen.demo.simsite import write_public_key
from suishen.gateway.config import (
    GatewayConfig,
    LaneSettings,
    NoGateSettings,
    OsdpScannerSettings,
    UhppoteScannerSettings,
    load_config,
)
from suishen.gateway.journal import JournalRow
from suishen.gateway.lists import RosterEntry, roster_body
from suishen.gateway.policy import RuleMode
from suishen.gateway.records import Direction
from suishen.gateway.service import GatewayService
from suishen.protocol.bundles import seal_bundle
from suishen.protocol.codes import Identity
from suishen.protocol.person import person_key
from tests.integration.gateway_fixtures import cnid, ric, td3_mrz

EXAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "config"
SITES = ["office-building", "construction-site", "hotel", "venue"]
WAIT_S = 5.0
START_S = 15.0  # a fresh interpreter importing everything, then the devices connecting
POLL_S = 0.01

PASSPORT = "533401372"
GUEST = Identity(
    idt="PP", idn=PASSPORT, nat="GBR", nm="SMITH JOHN", dob="1985-05-05", st="G"
)  # test data


# --------------------------------------------------------------------------- the site's files


def without_table(text: str, name: str) -> str:
    """The TOML text without the table `name` (its header line up to the next header)."""
    out: list[str] = []
    skipping = False
    for line in text.splitlines(keepends=True):
        header = re.match(r"\s*\[\[?\s*([A-Za-z0-9_.\-]+)\s*\]\]?", line)
        if header:
            table = header.group(1)
            skipping = table == name or table.startswith(name + ".")
        if not skipping:
            out.append(line)
    return "".join(out)


@dataclasses.dataclass(slots=True)
class Site:
    """An example config copied into a directory, with everything its paths need."""

    config_path: Path
    config: GatewayConfig
    environ: dict[str, str]
    issuer: IssuerKey
    bundle_key: ed25519.Ed25519PrivateKey
    pepper: bytes

    def key(self, idt: str, idn: str, nat: str | None = None) -> str:
        return person_key(self.pepper, idt, idn, nat)

    def code(self, identity: Identity) -> str:
        return self.issuer.issue(identity, iat=int(time.time()), ttl_s=120)

    def write_bundle(self, kind: str, body: Any) -> None:
        """A last-known-good bundle signed with the hub's (generated) bundle key."""
        path = self.config.lists.directory / f"{kind}.bundle"
        path.parent.mkdir(parents=True, exist_ok=True)
        data = seal_bundle(
            kind=kind, version=1, issued_at=int(time.time()), body=body, key=self.bundle_key
        )
        path.write_bytes(data)


def prepare_site(name: str, root: Path) -> Site:
    """Copy deploy/config/<name>.toml (minus [hub]) into root; make its keys and secrets."""
    text = without_table((EXAMPLES / f"{name}.toml").read_text(encoding="utf-8"), "hub")
    config_path = root / f"{name}.toml"
    config_path.write_text(text, encoding="utf-8")
    config = load_config(config_path)
    assert config.hub is None
    assert config.http.host == "127.0.0.1"

    generate_issuer(root / "issuer", alg="ES256", issuer="CN-SH")
    trust = build_trust_file([root / "issuer"])
    bundle_key = ed25519.Ed25519PrivateKey.generate()
    assert config.lists.bundle_key_file is not None, "examples name a key file, never a key"
    write_public_key(config.lists.bundle_key_file, bundle_key.public_key())
    assert config.privacy.hub_seal_key_file is not None
    write_public_key(
        config.privacy.hub_seal_key_file, x25519.X25519PrivateKey.generate().public_key()
    )

    pepper = secrets.token_hex(32)
    environ: dict[str, str] = {}
    if config.privacy.pepper_env is not None:
        environ[config.privacy.pepper_env] = pepper
    else:
        assert config.privacy.pepper_file is not None
        write_secret(config.privacy.pepper_file, pepper)
    for bus in config.osdp:
        for reader in bus.readers:
            scbk = secrets.token_hex(16)
            if reader.scbk_file is not None:
                write_secret(reader.scbk_file, scbk)
            elif reader.scbk_env is not None:
                environ[reader.scbk_env] = scbk
    site = Site(
        config_path=config_path,
        config=config,
        environ=environ,
        issuer=IssuerKey(root / "issuer"),
        bundle_key=bundle_key,
        pepper=config.privacy.read_pepper(environ),
    )
    if config.lists.trust_file is not None:
        config.lists.trust_file.parent.mkdir(parents=True, exist_ok=True)
        config.lists.trust_file.write_text(json.dumps(trust), encoding="utf-8")
    else:  # no local trust file: the trust list comes as a signed bundle
        site.write_bundle("trust", trust)
    return site


def write_secret(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n", encoding="utf-8")
    path.chmod(0o600)


# --------------------------------------------------------------------------- the gateway


async def device_states(http: aiohttp.ClientSession, port: int) -> dict[str, str]:
    """device id -> state, as /status says."""
    async with http.get(f"http://127.0.0.1:{port}/status") as response:
        assert response.status == 200
        status: dict[str, Any] = await response.json()
    return {
        device_id: device["state"]
        for lane in status["lanes"]
        for device_id, device in lane["devices"].items()
    }


async def wait_all_connected(http: aiohttp.ClientSession, port: int, timeout_s: float) -> None:
    """Until /status shows every device of every lane connected (the listener may not be up
    yet: connection errors are retried)."""
    states: dict[str, str] = {}
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                with contextlib.suppress(aiohttp.ClientConnectionError):
                    states = await device_states(http, port)
                    if states and set(states.values()) == {"connected"}:
                        return
                await asyncio.sleep(POLL_S * 5)
    except TimeoutError:
        raise AssertionError(f"devices not all connected: {states}") from None


@dataclasses.dataclass(slots=True)
class JournalWatch:
    """Reads the journal of a running service and hands out rows as they appear."""

    service: GatewayService
    cursor: int = 0
    rows: list[JournalRow] = dataclasses.field(default_factory=list)
    taken: set[int] = dataclasses.field(default_factory=set)

    async def row(self, match: Callable[[JournalRow], bool]) -> JournalRow:
        async with asyncio.timeout(WAIT_S):
            while True:
                for row in self.rows:
                    if row.seq not in self.taken and match(row):
                        self.taken.add(row.seq)
                        return row
                fresh = await self.service.journal.read_unsynced(self.cursor)
                if fresh:
                    self.rows.extend(fresh)
                    self.cursor = fresh[-1].seq
                else:
                    await asyncio.sleep(POLL_S)


async def wait_until(check: Callable[[], bool], what: str) -> None:
    try:
        async with asyncio.timeout(WAIT_S):
            while not check():  # noqa: ASYNC110 (a simulator's counters have no event)
                await asyncio.sleep(POLL_S)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def pass_lane(
    site: Site, sims: Simulators, watch: JournalWatch, lane: LaneSettings, payload: str | int
) -> JournalRow:
    """Present `payload` at the lane; check the allowed scan, the open and the passage are
    journalled and the gate simulator got exactly one open command; return the scan row."""
    before = sims.opens(lane)
    await sims.send(lane, payload)
    scan = await watch.row(lambda r: r.kind == "scan" and r.lane_id == lane.id)
    assert (scan.verdict, scan.direction, scan.zone) == (
        "allow",
        lane.direction.value,
        lane.zone,
    ), (lane.id, scan.reason)
    assert scan.site_id == site.config.site.id
    if isinstance(lane.gate, NoGateSettings):
        return scan
    await wait_until(lambda: sims.opens(lane) == before + 1, f"the open command at {lane.id}")
    passage = await watch.row(lambda r: r.kind == "passage" and r.scan_seq == scan.seq)
    assert (passage.lane_id, passage.outcome) == (lane.id, "passed")
    assert sims.opens(lane) == before + 1, f"{lane.id}: one scan, one open command"
    return scan


@dataclasses.dataclass(frozen=True, slots=True)
class Person:
    idn: str  # resident ID number (test data)
    card: int  # the IC card number a worker holds (fits Wiegand 26 and UHPPOTE)


def is_card_lane(lane: LaneSettings) -> bool:
    return isinstance(lane.scanner, UhppoteScannerSettings | OsdpScannerSettings)


def who_passes(lanes: tuple[LaneSettings, ...]) -> dict[str, Person]:
    """A person per entry lane; each exit lane lets out someone who came in through an entry
    of the same zone with the same kind of credential (card or code)."""
    gated = [lane for lane in lanes if lane.direction in (Direction.IN, Direction.OUT)]
    people: dict[str, Person] = {}
    inside: list[tuple[LaneSettings, Person]] = []
    for i, lane in enumerate(lane for lane in gated if lane.direction is Direction.IN):
        person = Person(
            idn=cnid(dt.date(1970 + i, 1 + i % 12, 1 + i), f"{300 + i:03d}"), card=400_000 + i
        )
        people[lane.id] = person
        inside.append((lane, person))
    for lane in (lane for lane in gated if lane.direction is Direction.OUT):
        match = next(
            (e, p)
            for e, p in inside
            if e.zone == lane.zone and is_card_lane(e) == is_card_lane(lane)
        )
        inside.remove(match)
        people[lane.id] = match[1]
    return people


def payload_for(site: Site, lane: LaneSettings, person: Person) -> str | int:
    if is_card_lane(lane):
        return person.card
    return site.code(ric(person.idn, dob=f"{person.idn[6:10]}-{person.idn[10:12]}-01"))


async def occupancy(http: aiohttp.ClientSession, port: int) -> dict[str, int]:
    async with http.get(f"http://127.0.0.1:{port}/status") as response:
        status: dict[str, Any] = await response.json()
    return {zone: int(count) for zone, count in status["occupancy"].items()}


# --------------------------------------------------------------------------- the tests


@pytest.mark.parametrize("name", SITES)
async def test_example_site_serves_every_lane(name: str, tmp_path: Path) -> None:
    """An example config, as shipped (minus [hub]), runs against simulators on the addresses it
    names: every device connects (/status), a valid person passes every entry and exit lane
    (QR code at QR scanners, a registered worker's card at card readers), each gate simulator
    receives exactly one open command per allowed scan, and the journal holds the allowed
    scan and its passage. Where registration applies, only workers on a signed roster bundle
    get in. At a hotel desk, a passport check-in journals a stay and the check-out closes it.
    Occupancy ends at what went in minus what went out; the gateway stops cleanly."""
    site = prepare_site(name, tmp_path)
    config = site.config
    people = who_passes(config.lanes)
    if config.site.rules.registration_mode(config.site.kind) is not RuleMode.OFF:
        roster = [
            (
                site.key("RIC", person.idn),
                RosterEntry(site_id=config.site.id, card=str(person.card), name_mask="王*明"),
            )
            for person in {p.idn: p for p in people.values()}.values()
        ]
        site.write_bundle("roster", roster_body(roster))
    service = GatewayService(config, environ=site.environ)
    async with simulators(config, site.environ) as sims, aiohttp.ClientSession() as http:
        task = asyncio.create_task(service.run())
        try:
            async with asyncio.timeout(WAIT_S):
                await service.wait_ready()
            assert service.http_port == config.http.port
            await wait_all_connected(http, config.http.port, WAIT_S)
            watch = JournalWatch(service)
            lanes = {lane.id: lane for lane in config.lanes}

            desks = {lane.direction: lane for lane in config.lanes if lane.gate.kind == "none"}
            guest_key = site.key("PP", PASSPORT, "GBR")
            if Direction.CHECKIN in desks:
                mrz = td3_mrz(
                    number=PASSPORT,
                    nationality="GBR",
                    surname="SMITH",
                    given="JOHN",
                    birth=dt.date(1985, 5, 5),
                    expiry=dt.date(2035, 1, 1),
                )
                checkin = await pass_lane(site, sims, watch, desks[Direction.CHECKIN], mrz)
                assert (checkin.format, checkin.person_key) == ("MRZ", guest_key)
                alert = await watch.row(lambda r: r.kind == "alert" and r.scan_seq == checkin.seq)
                assert json.loads(alert.detail or "{}")["kind"] == "foreign_guest"
                assert service.state.stay_of(guest_key) is not None
                assert service.state.open_stays() == 1

            entries = [lane for lane in config.lanes if lane.direction is Direction.IN]
            exits = [lane for lane in config.lanes if lane.direction is Direction.OUT]
            for lane in entries:
                row = await pass_lane(
                    site, sims, watch, lane, payload_for(site, lane, people[lane.id])
                )
                assert row.person_key == site.key("RIC", people[lane.id].idn)
            expected = dict.fromkeys(config.site.zones, 0)
            for lane in entries:
                expected[lane.zone] += 1
            assert await occupancy(http, config.http.port) == expected
            for lane in exits:
                row = await pass_lane(
                    site, sims, watch, lane, payload_for(site, lane, people[lane.id])
                )
                assert row.person_key == site.key("RIC", people[lane.id].idn)
                expected[lane.zone] -= 1
            assert await occupancy(http, config.http.port) == expected

            if Direction.CHECKIN in desks:
                entrance, way_out = entries[0], exits[0]
                await pass_lane(site, sims, watch, entrance, site.code(GUEST))
                await pass_lane(site, sims, watch, way_out, site.code(GUEST))
            if Direction.CHECKOUT in desks:
                checkout = await pass_lane(site, sims, watch, desks[Direction.CHECKOUT], mrz)
                assert checkout.person_key == guest_key
                assert service.state.stay_of(guest_key) is None
                assert service.state.open_stays() == 0

            if config.site.rules.registration_mode(config.site.kind) is RuleMode.DENY:
                stranger = cnid(dt.date(1966, 6, 6), "999")
                lane = next(lane for lane in entries if not is_card_lane(lane))
                before = sims.opens(lane)
                await sims.send(lane, site.code(ric(stranger, dob="1966-06-06")))
                denied = await watch.row(lambda r: r.kind == "scan" and r.lane_id == lane.id)
                assert (denied.verdict, denied.reason) == ("deny", "not_registered")
                card_lane = next(lane for lane in entries if is_card_lane(lane))
                await sims.send(card_lane, 777_777)
                unknown = await watch.row(lambda r: r.kind == "scan" and r.lane_id == card_lane.id)
                assert (unknown.verdict, unknown.reason) == ("deny", "not_registered")
                await asyncio.sleep(0.1)
                assert sims.opens(lane) == before

            assert len(lanes) == len(entries) + len(exits) + len(desks)
            assert set((await device_states(http, config.http.port)).values()) == {"connected"}
        finally:
            service.stop()
            async with asyncio.timeout(WAIT_S):
                await task
    assert task.exception() is None


async def test_office_building_cli_run_and_sigterm(tmp_path: Path) -> None:
    """`python -m suishen gateway run --config <copy of office-building.toml>` against the
    simulators: every device connects, a scan at an entry lane opens its turnstile; SIGTERM
    then exits 0, and the journal on disk holds the allowed scan and its passage."""
    site = prepare_site("office-building", tmp_path)
    config = site.config
    lane = next(lane for lane in config.lanes if lane.direction is Direction.IN)
    env = {**os.environ, **site.environ}
    log = tmp_path / "gateway.log"
    async with simulators(config, site.environ) as sims, aiohttp.ClientSession() as http:
        with log.open("wb") as out:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "suishen",
                "gateway",
                "run",
                "--config",
                str(site.config_path),
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out,
                stderr=out,
            )
        try:
            try:
                await wait_all_connected(http, config.http.port, START_S)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{log.read_text(errors='replace')}") from None
            await sims.send(lane, site.code(ric(cnid(dt.date(1988, 8, 8), "808"))))
            turnstile = sims.turnstiles[lane.id]
            await wait_until(lambda: turnstile.opens_received == 1, "the open command")
            await wait_until(lambda: turnstile.passages == 1, "the passage")
            process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(WAIT_S):
                code = await process.wait()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert code == 0, log.read_text(errors="replace")
    with contextlib.closing(sqlite3.connect(config.journal.path)) as db:
        rows = db.execute(
            "SELECT seq, kind, verdict, outcome, scan_seq FROM events "
            "WHERE lane_id = ? AND kind IN ('scan', 'passage') ORDER BY seq",
            (lane.id,),
        ).fetchall()
    [(scan_seq, _, verdict, _, _), (_, kind, _, outcome, of_scan)] = rows
    assert verdict == "allow"
    assert (kind, outcome, of_scan) == ("passage", "passed", scan_seq)
