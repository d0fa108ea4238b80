"""End to end, per site kind: pty QR scanner -> gateway (in-process) -> Modbus turnstile.

Every test runs the real GatewayService against a SimSite: the scanner simulators write
framed bytes on pty pairs that the serial driver reads, the gateway decides and journals,
and the Modbus driver opens the turnstile simulator, whose passage sensor reports back.
Assertions are on what can be observed from outside: open commands the turnstile received,
journal rows (verdict, reason, alert and passage rows), /status, /health and /metrics over
loopback HTTP. Codes are issued with real times (the gateway verifies against its clock).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import time
from collections import Counter
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from suishen.demo.simsite import LaneSpec
from suishen.gateway.lists import RosterEntry, WatchEntry, roster_body
from suishen.gateway.records import AlertRoute, Direction, SiteKind, WatchLevel
from suishen.protocol.codes import Identity, issue_ssc1
from suishen.protocol.cose import kid_of, spki_der
from tests.integration.gateway_fixtures import (
    RunningGateway,
    alert_detail,
    cnid,
    cti_of,
    ric,
    running_gateway,
    tamper,
    td3_mrz,
)

# Fixed identities (test data; the gateway must never log or store them in clear).
ADULT_BIRTH = dt.date(1985, 5, 5)
ALICE = cnid(ADULT_BIRTH, "101")
BOB = cnid(dt.date(1990, 2, 3), "113")
CAROL = cnid(dt.date(1978, 11, 30), "124")
DAVE = cnid(dt.date(2001, 7, 14), "135")
ERIN = cnid(dt.date(1969, 1, 1), "146")

BUILDING_LANES = [
    LaneSpec(id="in-1"),
    LaneSpec(id="in-2"),
    LaneSpec(id="out-1", direction=Direction.OUT),
]


def dob(number: str) -> str:
    return f"{number[6:10]}-{number[10:12]}-{number[12:14]}"


def person(number: str, status: str = "G") -> Identity:
    """The Suishen identity of a resident by ID number (birth date taken from the number)."""
    return ric(number, status=status, dob=dob(number))


# --------------------------------------------------------------------------- building


async def test_building_green_code_opens_and_passage_is_journalled(tmp_path: Path) -> None:
    """A green code opens the entrance turnstile once; the journal holds the allowed scan and
    then its passage (passed); /status counts the person inside and an exit lane lets them out
    again, bringing occupancy back to 0; the journal file never holds the clear ID number."""
    async with running_gateway(tmp_path, lanes=BUILDING_LANES) as gw:
        code = gw.code(person(ALICE))
        entry = await gw.scan("in-1", code)
        assert (entry.verdict, entry.reason) == ("allow", None)
        assert entry.row.format == "SSC1"
        assert entry.row.person_key == gw.key("RIC", ALICE)
        assert entry.row.cti == cti_of(code)
        assert entry.row.identity_sealed, "the identity is sealed for the hub"
        assert entry.passage is not None
        assert entry.passage.outcome == "passed"
        assert gw.site.opens("in-1") == 1
        assert gw.site.opens("in-2") == gw.site.opens("out-1") == 0
        assert await gw.occupancy() == 1

        exit_ = await gw.scan("out-1", gw.code(person(ALICE)))
        assert (exit_.verdict, exit_.reason) == ("allow", None)
        assert exit_.passage is not None
        assert exit_.passage.outcome == "passed"
        assert gw.site.opens("out-1") == 1
        assert await gw.occupancy() == 0

        status = await gw.status()
        lanes = {lane["id"]: lane for lane in status["lanes"]}
        assert (lanes["in-1"]["scans"], lanes["in-1"]["allowed"]) == (1, 1)
        assert (lanes["out-1"]["scans"], lanes["out-1"]["allowed"]) == (1, 1)
        await gw.refresh()
        kinds = Counter(row.kind for row in gw.rows)
        # two scans, two passages, and each device's connection as a device event
        assert (kinds["scan"], kinds["passage"]) == (2, 2)
        assert kinds["device"] >= len(status["lanes"]) * 2
        assert set(kinds) == {"scan", "passage", "device"}
        assert status["journal"]["last_seq"] == sum(kinds.values())
        metrics = await gw.metrics()
        assert 'suishen_scans_total{lane="in-1",verdict="allow",reason=""} 1' in metrics
        assert 'suishen_occupancy{zone="main"} 0' in metrics
    journal_bytes = b"".join(p.read_bytes() for p in (tmp_path / "state").glob("journal*"))
    assert ALICE.encode() not in journal_bytes
    assert "王小明".encode() not in journal_bytes


async def test_building_status_colours(tmp_path: Path) -> None:
    """Red is denied (turnstile gets no open command, reason status_red); with the site rule
    status_yellow = "flag" a yellow code opens the gate and is journalled with the remark."""
    rules = 'status_yellow = "flag"\n'
    async with running_gateway(tmp_path, lanes=BUILDING_LANES, rules_toml=rules) as gw:
        red = await gw.scan("in-1", gw.code(person(BOB, status="R")))
        assert (red.verdict, red.reason) == ("deny", "status_red")
        assert red.row.status == "R"
        assert red.passage is None
        assert gw.site.opens("in-1") == 0

        yellow = await gw.scan("in-1", gw.code(person(CAROL, status="Y")))
        assert (yellow.verdict, yellow.reason) == ("allow", "status_yellow")
        assert yellow.passage is not None
        assert gw.site.opens("in-1") == 1
        assert await gw.occupancy() == 1
        metrics = await gw.metrics()
        assert 'suishen_scans_total{lane="in-1",verdict="deny",reason="status_red"} 1' in metrics


async def test_venue_yellow_denied_by_default(tmp_path: Path) -> None:
    """Without a rule, status_yellow denies (the default): a yellow code keeps the gate shut."""
    lanes = [LaneSpec(id="in-1")]
    async with running_gateway(tmp_path, kind=SiteKind.VENUE, lanes=lanes) as gw:
        yellow = await gw.scan("in-1", gw.code(person(CAROL, status="Y")))
        assert (yellow.verdict, yellow.reason) == ("deny", "status_yellow")
        assert gw.site.opens("in-1") == 0


async def test_building_anti_passback(tmp_path: Path) -> None:
    """With anti_passback = "deny", someone inside cannot come in again (a fresh code, the
    same lane) until they have gone out; after the exit they are let in again."""
    rules = 'anti_passback = "deny"\n'
    async with running_gateway(tmp_path, lanes=BUILDING_LANES, rules_toml=rules) as gw:
        assert (await gw.scan("in-1", gw.code(person(ALICE)))).verdict == "allow"
        again = await gw.scan("in-1", gw.code(person(ALICE)))
        assert (again.verdict, again.reason) == ("deny", "anti_passback")
        assert gw.site.opens("in-1") == 1
        assert (await gw.scan("out-1", gw.code(person(ALICE)))).verdict == "allow"
        back = await gw.scan("in-2", gw.code(person(ALICE)))
        assert (back.verdict, back.reason) == ("allow", None)
        assert gw.site.opens("in-2") == 1
        assert await gw.occupancy() == 1


async def test_building_capacity_hard_and_soft(tmp_path: Path) -> None:
    """capacity_soft = 2: the entry that brings the count to 2 is let in with a capacity alert
    row; capacity_hard = 3: the fourth person is denied capacity_full (gate shut) until
    someone goes out, then let in."""
    rules = "capacity_soft = 2\ncapacity_hard = 3\n"
    async with running_gateway(tmp_path, lanes=BUILDING_LANES, rules_toml=rules) as gw:
        first = await gw.scan("in-1", gw.code(person(ALICE)))
        assert (first.verdict, first.alerts) == ("allow", ())
        second = await gw.scan("in-2", gw.code(person(BOB)))
        assert (second.verdict, second.reason) == ("allow", None)
        assert second.alert_kinds() == ["capacity"]
        assert alert_detail(second.alerts[0])["route"] == "staff"
        third = await gw.scan("in-1", gw.code(person(CAROL)))
        assert (third.verdict, third.alerts) == ("allow", ())
        assert await gw.occupancy() == 3

        opens = gw.site.opens("in-1") + gw.site.opens("in-2")
        full = await gw.scan("in-2", gw.code(person(DAVE)))
        assert (full.verdict, full.reason) == ("deny", "capacity_full")
        assert gw.site.opens("in-1") + gw.site.opens("in-2") == opens

        assert (await gw.scan("out-1", gw.code(person(BOB)))).verdict == "allow"
        assert await gw.occupancy() == 2
        later = await gw.scan("in-2", gw.code(person(DAVE)))
        assert (later.verdict, later.reason) == ("allow", None)
        assert later.alert_kinds() == []  # 2 -> 3 does not cross the soft limit again
        assert await gw.occupancy() == 3


async def test_building_watchlist_deny_and_notify(tmp_path: Path) -> None:
    """A watchlist installed while the gateway runs takes effect at once: level deny keeps the
    gate shut with reason watchlist and an alert row (route police); level notify lets the
    person in with no remark (silent) but journals an alert row; /status shows version 1."""
    async with running_gateway(tmp_path, lanes=BUILDING_LANES) as gw:
        entries = [
            (
                gw.key("RIC", ERIN),
                WatchEntry(level=WatchLevel.DENY, route=AlertRoute.POLICE, reason="wanted"),
            ),
            (
                gw.key("RIC", DAVE),
                WatchEntry(level=WatchLevel.NOTIFY, route=AlertRoute.STAFF, reason="missing"),
            ),
        ]
        assert gw.install_watchlist(entries, version=1) == 1

        denied = await gw.scan("in-1", gw.code(person(ERIN)))
        assert (denied.verdict, denied.reason) == ("deny", "watchlist")
        assert gw.site.opens("in-1") == 0
        [alert] = denied.alerts
        assert alert.person_key == gw.key("RIC", ERIN)
        assert alert_detail(alert) | {"detail": ""} == {
            "kind": "watchlist",
            "level": "deny",
            "route": "police",
            "detail": "",
        }

        notified = await gw.scan("in-1", gw.code(person(DAVE)))
        assert (notified.verdict, notified.reason) == ("allow", None)
        assert gw.site.opens("in-1") == 1
        [alert] = notified.alerts
        assert (alert_detail(alert)["level"], alert_detail(alert)["route"]) == ("notify", "staff")

        plain = await gw.scan("in-2", gw.code(person(ALICE)))
        assert (plain.verdict, plain.alerts) == ("allow", ())

        status = await gw.status()
        watchlist = next(s for s in status["lists"] if s["kind"] == "watchlist")
        assert (watchlist["version"], watchlist["entries"]) == (1, 2)


# --------------------------------------------------------------------------- construction


async def test_construction_registered_workers_only(tmp_path: Path) -> None:
    """Only workers on the signed roster, within their validity dates, at this site, get in:
    a registered worker by ID number (ID reader) or by code opens the turnstile; an
    unregistered person, a registration that ended or has not begun, and one for another
    site are denied not_registered (gate shut); an ID number with a wrong check digit is
    malformed_claims. Exits are not gated by the roster."""
    now = int(time.time())
    day = 86400

    def write_roster(gw: RunningGateway) -> None:
        site = "site-construction"
        workers = [
            (ALICE, RosterEntry(site_id=site, valid_from=now - day, valid_to=now + day)),
            (BOB, RosterEntry(site_id=site, valid_from=now - 9 * day, valid_to=now - day)),
            (CAROL, RosterEntry(site_id=site, valid_from=now + day)),
            (DAVE, RosterEntry(site_id="site-elsewhere")),
        ]
        gw.write_bundle("roster", roster_body((gw.key("RIC", n), e) for n, e in workers))

    lanes = [LaneSpec(id="in-1"), LaneSpec(id="out-1", direction=Direction.OUT)]
    async with running_gateway(
        tmp_path, kind=SiteKind.CONSTRUCTION, lanes=lanes, before_start=write_roster
    ) as gw:
        by_number = await gw.scan("in-1", ALICE)
        assert (by_number.verdict, by_number.reason) == ("allow", None)
        assert (by_number.row.format, by_number.row.nationality) == ("CNID", "CHN")
        assert by_number.row.person_key == gw.key("RIC", ALICE)
        assert by_number.passage is not None
        assert gw.site.opens("in-1") == 1
        assert gw.service.state.attended(gw.key("RIC", ALICE)) is not None

        assert (await gw.scan("out-1", gw.code(person(ALICE)))).verdict == "allow"
        by_code = await gw.scan("in-1", gw.code(person(ALICE)))
        assert (by_code.verdict, by_code.reason) == ("allow", None)
        assert gw.site.opens("in-1") == 2

        for text in (
            ERIN,  # never registered, by ID number
            gw.code(person(ERIN)),  # and by code
            gw.code(person(BOB)),  # registration ended yesterday
            CAROL,  # registration starts tomorrow
            gw.code(person(DAVE)),  # registered at another site
        ):
            denied = await gw.scan("in-1", text)
            assert (denied.verdict, denied.reason) == ("deny", "not_registered")
        bad_digit = ALICE[:-1] + ("0" if ALICE[-1] != "0" else "1")
        malformed = await gw.scan("in-1", bad_digit)
        assert (malformed.verdict, malformed.reason) == ("deny", "malformed_claims")
        assert gw.site.opens("in-1") == 2
        assert await gw.occupancy() == 1

        status = await gw.status()
        listed = next(s for s in status["lists"] if s["kind"] == "roster")
        assert (listed["version"], listed["entries"], listed["problem"]) == (1, 4, None)


# --------------------------------------------------------------------------- hotel

PASSPORT_NUMBER = "533401372"


def passport_mrz() -> str:
    return td3_mrz(
        number=PASSPORT_NUMBER,
        nationality="GBR",
        surname="SMITH",
        given="JOHN",
        birth=ADULT_BIRTH,
        expiry=dt.date(2035, 1, 1),
    )


async def test_hotel_checkin_stays_minors_and_foreign_guests(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """At the desk (no gate): a minor (< 16) checking in alone opens a stay with a
    minor_unaccompanied alert (police); a foreign passport (TD3 MRZ) raises a foreign_guest
    alert; a minor checking in right after an adult joins the adult's stay (no alert); the
    guest's code opens the entrance turnstile; check-out closes the stay, so the same minor
    checking in again is unaccompanied. No document number or name reaches the logs."""
    today = dt.datetime.now(ZoneInfo("Asia/Shanghai")).date()
    minor_1 = cnid(dt.date(today.year - 10, 3, 15), "157")
    minor_2 = cnid(dt.date(today.year - 8, 6, 1), "168")
    lanes = [
        LaneSpec(id="desk-1", direction=Direction.CHECKIN),
        LaneSpec(id="desk-2", direction=Direction.CHECKIN),
        LaneSpec(id="desk-out", direction=Direction.CHECKOUT),
        LaneSpec(id="in-1"),
    ]
    async with running_gateway(tmp_path, kind=SiteKind.HOTEL, lanes=lanes) as gw:
        state = gw.service.state
        alone = await gw.scan("desk-1", minor_1)
        assert (alone.verdict, alone.reason) == ("allow", "minor_unaccompanied")
        assert alone.row.minor is True
        assert alone.alert_kinds() == ["minor_unaccompanied"]
        assert alone.alerts[0].person_key == gw.key("RIC", minor_1)
        assert alert_detail(alone.alerts[0])["route"] == "police"
        assert state.open_stays() == 1

        guest_key = gw.key("PP", PASSPORT_NUMBER, "GBR")
        foreign = await gw.scan("desk-2", passport_mrz())
        assert (foreign.verdict, foreign.reason) == ("allow", None)
        assert (foreign.row.format, foreign.row.nationality) == ("MRZ", "GBR")
        assert foreign.row.person_key == guest_key
        assert foreign.row.direction == "checkin"
        assert foreign.alert_kinds() == ["foreign_guest"]
        assert alert_detail(foreign.alerts[0])["route"] == "police"
        assert state.open_stays() == 2

        child = await gw.scan("desk-2", minor_2)
        assert (child.verdict, child.reason, child.alerts) == ("allow", None, ())
        stay = state.stay_of(guest_key)
        assert stay is not None
        assert state.stay_of(gw.key("RIC", minor_2)) is stay

        domestic = await gw.scan("desk-1", ALICE)  # an adult joins the first minor's stay
        assert (domestic.verdict, domestic.alerts) == ("allow", ())

        guest = Identity(
            idt="PP", idn=PASSPORT_NUMBER, nat="GBR", nm="SMITH JOHN", dob=str(ADULT_BIRTH), st="G"
        )
        entrance = await gw.scan("in-1", gw.code(guest))
        assert (entrance.verdict, entrance.row.person_key) == ("allow", guest_key)
        assert gw.site.opens("in-1") == 1

        checkout = await gw.scan("desk-out", passport_mrz())
        assert (checkout.verdict, checkout.row.direction) == ("allow", "checkout")
        assert state.stay_of(guest_key) is None
        assert state.stay_of(gw.key("RIC", minor_2)) is None
        assert state.open_stays() == 1

        again = await gw.scan("desk-2", minor_2)
        assert (again.verdict, again.reason) == ("allow", "minor_unaccompanied")
        assert again.alert_kinds() == ["minor_unaccompanied"]
    logged = "".join(capfd.readouterr())
    for secret in (PASSPORT_NUMBER, "SMITH", minor_1, minor_2, ALICE):
        assert secret not in logged


# --------------------------------------------------------------------------- venue


def crowd(count: int) -> list[str]:
    """`count` distinct adult resident ID numbers."""
    return [
        cnid(dt.date(1980 + i % 20, 1 + i % 12, 1 + i % 28), f"{200 + i:03d}") for i in range(count)
    ]


async def test_venue_four_entry_lanes_hold_hard_capacity(tmp_path: Path) -> None:
    """A venue with four entry and two exit lanes and capacity_hard = 5: eight people in two
    waves of four arriving at once, one per entry lane (a lane serves one person at a time: a
    scan made while its gate is open for someone else is lane_busy), leave exactly five
    inside; the other three are denied capacity_full and their turnstiles get no open
    command; exits then make room."""
    lanes = [LaneSpec(id=f"in-{i}") for i in range(1, 5)] + [
        LaneSpec(id=f"out-{i}", direction=Direction.OUT) for i in range(1, 3)
    ]
    rules = "capacity_hard = 5\ncapacity_soft = 4\n"
    people = crowd(8)
    entries = [f"in-{1 + i % 4}" for i in range(8)]
    async with running_gateway(tmp_path, kind=SiteKind.VENUE, lanes=lanes, rules_toml=rules) as gw:
        codes = [gw.code(person(p)) for p in people]
        results = []
        for wave in (slice(0, 4), slice(4, 8)):
            pairs = list(zip(entries[wave], codes[wave], strict=True))
            await asyncio.gather(*(gw.site.scan(lane, c) for lane, c in pairs))
            results += await asyncio.gather(*(gw.next_result(lane) for lane, _c in pairs))
        verdicts = sorted((r.verdict, r.reason) for r in results)
        assert verdicts == [("allow", None)] * 5 + [("deny", "capacity_full")] * 3
        assert sum(gw.site.opens(f"in-{i}") for i in range(1, 5)) == 5
        assert await gw.occupancy() == 5
        assert sum(len(r.alerts) for r in results) == 1  # the soft limit crossed once

        by_key = {gw.key("RIC", p): p for p in people}
        inside = [by_key[str(r.row.person_key)] for r in results if r.verdict == "allow"]
        outside = [by_key[str(r.row.person_key)] for r in results if r.verdict == "deny"]
        assert (await gw.scan("out-1", gw.code(person(inside[0])))).verdict == "allow"
        assert (await gw.scan("out-2", gw.code(person(inside[1])))).verdict == "allow"
        assert await gw.occupancy() == 3
        late = await gw.scan("in-3", gw.code(person(outside[0])))
        assert (late.verdict, late.reason) == ("allow", None)
        assert await gw.occupancy() == 4
        metrics = await gw.metrics()
        assert 'suishen_occupancy{zone="main"} 4' in metrics


# --------------------------------------------------------------------------- bad input

GARBAGE = b"\x00\x01\x02\x1b[2J\x7f\r"  # control bytes: the framer discards the line
OVERLONG = b"SSC1:" + b"A" * 9000 + b"\r"  # longer than the framer's 8192-byte maximum
UNDECODABLE = b"SSC1:\xff\xfe\xff\r"  # neither UTF-8 nor the GB18030 fallback


def untrusted_code(identity: Identity) -> str:
    """A well-formed code signed by an issuer key the site does not trust."""
    key = ec.generate_private_key(ec.SECP256R1())
    return issue_ssc1(
        identity=identity,
        key=key,
        kid=kid_of(spki_der(key.public_key())),
        iss="CN-SH",
        iat=int(time.time()),
        ttl_s=120,
        cti=secrets.token_bytes(16),
    )


async def test_bad_input_on_every_lane_never_stops_the_gateway(tmp_path: Path) -> None:
    """Every lane (two entries, two exits) gets a burst of bad input at once: control-byte
    garbage, a line longer than the framer's maximum and bytes that are not text (the framer
    drops these; the lane journals the first at once as a malformed_prefix denial and folds
    the two that follow within its discard interval into one oversize denial with count 2),
    text that is no code, invalid UTF-8 that decodes
    as GB18030, bad base45, an oversize code, an expired code, a tampered code, a code from an
    untrusted issuer and, at entry lanes, a code already let in at the other entry lane. Each
    is journalled as a denial with its reason code, in order; then a good code opens every
    lane's turnstile, /health stays ok and every device stays connected."""
    lanes = [
        LaneSpec(id="in-1"),
        LaneSpec(id="in-2"),
        LaneSpec(id="out-1", direction=Direction.OUT),
        LaneSpec(id="out-2", direction=Direction.OUT),
    ]
    visitors = crowd(4)
    async with running_gateway(tmp_path, lanes=lanes) as gw:
        first_in = {"in-1": gw.code(person(visitors[0])), "in-2": gw.code(person(visitors[1]))}
        assert (await gw.scan("in-2", first_in["in-1"])).verdict == "allow"
        assert (await gw.scan("in-1", first_in["in-2"])).verdict == "allow"
        opens = {lane.id: gw.site.opens(lane.id) for lane in lanes}
        good = {
            "in-1": gw.code(person(visitors[2])),
            "in-2": gw.code(person(visitors[3])),
            "out-1": gw.code(person(visitors[0])),
            "out-2": gw.code(person(visitors[1])),
        }

        def burst(lane_id: str) -> tuple[list[bytes], list[str]]:
            someone = person(ALICE)
            sent = [
                GARBAGE,
                b"hello, world\r",
                OVERLONG,
                "\u6d4b\u8bd5".encode("gb18030") + b"\r",  # not UTF-8; GB18030 text
                UNDECODABLE,
                b"SSC1:!!!!\r",
                b"SSC1:" + b"A" * 5000 + b"\r",
                gw.code(someone, iat=time.time() - 400).encode() + b"\r",
                tamper(gw.code(someone)).encode() + b"\r",
                untrusted_code(someone).encode() + b"\r",
            ]
            reasons = [
                "malformed_prefix",
                "malformed_prefix",
                "malformed_base45",
                "oversize",
                "expired",
                "bad_signature",
                "unknown_kid",
            ]
            if lane_id in first_in:
                sent.append(first_in[lane_id].encode() + b"\r")
                reasons.append("replay")
            sent.append(good[lane_id].encode() + b"\r")
            return sent, reasons

        async def lane_run(lane_id: str) -> None:
            sent, reasons = burst(lane_id)
            # The framer's discards (garbage, overlong, undecodable) are journalled from the
            # driver's callback, so they may land a little before or after neighbouring scans.
            expected = sorted([*reasons, "malformed_prefix", "oversize"])
            for data in sent:
                await gw.send_raw(lane_id, data)
            results = [await gw.next_result(lane_id) for _ in range(len(expected) + 1)]
            allowed_rows = [r for r in results if r.verdict == "allow"]
            denied = sorted(r.reason for r in results if r.verdict == "deny")
            assert denied == expected, lane_id
            folded = [r.row.detail for r in results if r.reason == "oversize" and r.row.detail]
            assert len(folded) == 1 and '"discarded": 2' in str(folded[0]), lane_id
            assert len(allowed_rows) == 1, lane_id
            allowed = allowed_rows[0]
            assert (allowed.verdict, allowed.reason) == ("allow", None), lane_id
            assert allowed.row.cti == cti_of(good[lane_id])
            assert allowed.passage is not None
            assert allowed.passage.outcome == "passed"

        await asyncio.gather(*(lane_run(lane.id) for lane in lanes))
        for lane in lanes:
            assert gw.site.opens(lane.id) == opens[lane.id] + 1, lane.id

        status_code, health = await gw.health()
        assert (status_code, health["ok"]) == (200, True)
        status = await gw.status()
        for lane in status["lanes"]:
            assert {d["state"] for d in lane["devices"].values()} == {"connected"}, lane["id"]
            assert lane["failed_closed"] == 0
        assert await gw.occupancy() == 2
        metrics = await gw.metrics()
        for lane in lanes:
            for reason in ("bad_signature", "expired", "unknown_kid"):
                line = f'suishen_scans_total{{lane="{lane.id}",verdict="deny",reason="{reason}"}} 1'
                assert line in metrics
        assert 'suishen_scans_total{lane="in-1",verdict="deny",reason="replay"} 1' in metrics
        assert 'suishen_scans_total{lane="in-1",verdict="deny",reason="malformed_prefix"} 3' in (
            metrics
        )
