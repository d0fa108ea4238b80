"""Site state: occupancy, anti-passback, replay cache, stays, attendance, daily reset, replay."""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import time

import pytest

from suishen.gateway.records import (
    Decision,
    Direction,
    PassageOutcomeKind,
    PassageRecorded,
    Person,
    ScanDecided,
    ScanFormat,
    SiteKind,
    Verdict,
)
from suishen.gateway.state import SiteState
from suishen.protocol.reasons import Reason

SITE = "s1"
T0 = 1_790_000_000.0  # 2026-09-21 22:13:20 in Shanghai
KEYS = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(40)]


def person(key: str, minor: bool | None = False) -> Person:
    return Person(
        person_key=key,
        nationality="CHN",
        minor=minor,
        status="G",
        masked_name="张*明",
        masked_number="310***********1234",
    )


def scan(direction: Direction, key: str, ts: float, *, lane: str = "L1", zone: str = "main",
         cti: str | None = None, allow: bool = True, minor: bool | None = False,
         stay_id: str | None = None) -> ScanDecided:  # fmt: skip
    decision = (
        Decision(verdict=Verdict.ALLOW, reason=None, stay_id=stay_id)
        if allow
        else Decision(verdict=Verdict.DENY, reason=Reason.STATUS_RED)
    )
    return ScanDecided(
        ts=ts,
        site_id=SITE,
        lane_id=lane,
        direction=direction,
        format=ScanFormat.SSC1,
        decision=decision,
        person=person(key, minor),
        cti=cti,
        zone=zone,
    )


def passage(record: ScanDecided, ts: float, passed: bool = True) -> PassageRecorded:
    return PassageRecorded(
        ts=ts,
        site_id=SITE,
        lane_id=record.lane_id,
        scan_seq=0,
        outcome=PassageOutcomeKind.PASSED if passed else PassageOutcomeKind.NOT_PASSED,
        person_key=record.person.person_key if record.person else None,
        direction=record.direction,
        zone=record.zone,
    )


def test_occupancy_per_zone_and_site():
    """Entries and exits move people between zones; the site counts each person once."""
    state = SiteState(site_id=SITE, kind=SiteKind.BUILDING)
    state.apply(scan(Direction.IN, KEYS[0], T0))
    state.apply(scan(Direction.IN, KEYS[1], T0 + 1, zone="vip"))
    state.apply(scan(Direction.IN, KEYS[0], T0 + 2, zone="vip"))
    assert (state.count(), state.count("main"), state.count("vip")) == (2, 0, 2)
    assert state.zone_of(KEYS[0]) == "vip"
    assert state.last_direction(KEYS[0]) is Direction.IN
    state.apply(scan(Direction.OUT, KEYS[0], T0 + 3, lane="L2"))
    assert state.count() == 1
    assert state.people_inside() == frozenset({KEYS[1]})
    assert state.last_direction(KEYS[0]) is None
    state.apply(scan(Direction.IN, KEYS[2], T0 + 4, allow=False))
    assert state.count() == 1  # a denied scan moves nobody


def test_sensor_lanes_follow_passages_not_scans():
    """On a lane with a passage sensor only a PASSED passage changes occupancy."""
    state = SiteState(site_id=SITE, kind=SiteKind.VENUE)
    entered = scan(Direction.IN, KEYS[0], T0)
    state.apply(entered, sensor=True)
    assert state.count() == 0
    state.apply(passage(entered, T0 + 1, passed=False), sensor=True)
    assert state.count() == 0
    state.apply(passage(entered, T0 + 2), sensor=True)
    assert state.count() == 1
    state.apply(passage(entered, T0 + 3))  # a sensorless lane ignores passage events
    assert state.count() == 1


def test_replay_cache_remembers_entry_lane_until_expiry():
    """A code id let in is remembered with its lane for replay_ttl_s, then forgotten."""
    state = SiteState(site_id=SITE, kind=SiteKind.BUILDING, replay_ttl_s=360)
    state.apply(scan(Direction.IN, KEYS[0], T0, cti="aa" * 16, lane="L1"))
    state.apply(scan(Direction.IN, KEYS[0], T0 + 5, cti="aa" * 16, lane="L2"))
    assert state.replay_lane("aa" * 16, T0 + 359) == "L1"  # the first lane stays on record
    assert state.replay_lane("aa" * 16, T0 + 360) is None
    state.apply(scan(Direction.OUT, KEYS[0], T0 + 6, cti="bb" * 16, lane="L3"))
    state.apply(scan(Direction.IN, KEYS[1], T0 + 7, cti="cc" * 16, allow=False))
    assert state.replay_lane("bb" * 16, T0 + 10) is None  # exits are not remembered
    assert state.replay_lane("cc" * 16, T0 + 10) is None  # nor denied scans
    state.apply(scan(Direction.IN, KEYS[1], T0 + 400, cti="dd" * 16))
    assert state.replay_size() == 1  # expired entries are purged as new ones arrive


def test_replay_cache_is_bounded():
    """Past replay_max entries the oldest is dropped, so memory stays bounded."""
    state = SiteState(site_id=SITE, kind=SiteKind.VENUE, replay_max=100)
    for i in range(250):
        state.apply(scan(Direction.IN, KEYS[i % 40], T0 + i / 100, cti=f"{i:032x}"))
    assert state.replay_size() == 100
    assert state.replay_lane(f"{249:032x}", T0 + 3) == "L1"
    assert state.replay_lane(f"{0:032x}", T0 + 3) is None


def test_hotel_stays_open_join_and_close():
    """Check-in opens or joins a stay; check-out closes the guest's whole stay."""
    state = SiteState(site_id=SITE, kind=SiteKind.HOTEL)
    desk = {"lane": "D1"}
    state.apply(scan(Direction.CHECKIN, KEYS[0], T0, stay_id="D1@1", minor=False, **desk))
    state.apply(scan(Direction.CHECKIN, KEYS[1], T0 + 5, stay_id="D1@1", minor=True, **desk))
    stay = state.stay_of(KEYS[1])
    assert stay is not None and stay.has_adult and set(stay.guests) == {KEYS[0], KEYS[1]}
    assert state.stay_for_checkin("D1", T0 + 60) == "D1@1"  # within the party window
    assert state.stay_for_checkin("D1", T0 + 500) != "D1@1"
    state.apply(scan(Direction.CHECKIN, KEYS[2], T0 + 9, stay_id="room:8@9", **desk))
    assert state.stay_for_checkin("D1", T0 + 10, room="8") == "room:8@9"
    state.apply(scan(Direction.CHECKOUT, KEYS[0], T0 + 100, **desk))
    assert state.stay_of(KEYS[1]) is None
    assert state.open_stays() == 1
    state.apply(scan(Direction.CHECKOUT, KEYS[2], T0 + 101, **desk))
    assert state.open_stays() == 0
    assert state.stay_for_checkin("D1", T0 + 102, room="8").startswith("room:8@")


def test_moving_to_another_stay_leaves_the_first():
    """A guest checked in again joins the new stay; the old one loses them (and its adult)."""
    state = SiteState(site_id=SITE, kind=SiteKind.HOTEL)
    state.apply(scan(Direction.CHECKIN, KEYS[0], T0, lane="D1", stay_id="a", minor=False))
    state.apply(scan(Direction.CHECKIN, KEYS[1], T0, lane="D1", stay_id="a", minor=True))
    state.apply(scan(Direction.CHECKIN, KEYS[0], T0 + 9, lane="D1", stay_id="b", minor=False))
    first = state.stay("a")
    assert first is not None and not first.has_adult and set(first.guests) == {KEYS[1]}


def shanghai(year: int, month: int, day: int, hour: int, minute: int = 0) -> float:
    zone = dt.timezone(dt.timedelta(hours=8))
    return dt.datetime(year, month, day, hour, minute, tzinfo=zone).timestamp()


def test_daily_reset_clears_occupancy_and_attendance():
    """At the reset time occupancy, anti-passback and attendance clear; code ids do not."""
    state = SiteState(site_id=SITE, kind=SiteKind.CONSTRUCTION, daily_reset=dt.time(4, 0))
    day = shanghai(2026, 9, 21, 8)
    state.apply(scan(Direction.IN, KEYS[0], day, cti="aa" * 16))
    state.apply(scan(Direction.IN, KEYS[1], day + 60))
    assert state.attendance_count() == 2 and state.attended(KEYS[0]) == day
    assert not state.advance(shanghai(2026, 9, 22, 3, 59))
    assert state.count() == 2
    assert state.advance(shanghai(2026, 9, 22, 4, 0))
    assert (state.count(), state.attendance_count()) == (0, 0)
    assert state.last_reset == shanghai(2026, 9, 22, 4, 0)
    assert not state.advance(shanghai(2026, 9, 22, 5, 0))


def test_daily_reset_keeps_hotel_guests_inside():
    """Guests with an open stay stay counted inside through the daily reset."""
    state = SiteState(site_id=SITE, kind=SiteKind.HOTEL, daily_reset=dt.time(4, 0))
    evening = shanghai(2026, 9, 21, 20)
    state.apply(scan(Direction.CHECKIN, KEYS[0], evening, lane="D1", stay_id="s"))
    state.apply(scan(Direction.IN, KEYS[0], evening + 60))
    state.apply(scan(Direction.IN, KEYS[1], evening + 60))  # a visitor
    state.apply(scan(Direction.IN, KEYS[2], shanghai(2026, 9, 22, 9)))  # rolls the day
    assert state.people_inside() == frozenset({KEYS[0], KEYS[2]})
    assert state.open_stays() == 1


def test_attendance_is_kept_only_for_construction_sites():
    """Only construction sites keep daily attendance (first entry of the day)."""
    state = SiteState(site_id=SITE, kind=SiteKind.VENUE)
    state.apply(scan(Direction.IN, KEYS[0], T0))
    assert state.attendance_count() == 0


def journal(seed: int, kind: SiteKind, sensor_lanes: frozenset[str]) -> list:
    """A random but realistic journal over three days: scans, passages, desk check-ins."""
    rng = random.Random(seed)
    records: list = []
    ts = shanghai(2026, 9, 21, 7)
    for i in range(600):
        ts += rng.uniform(1, 500)
        lane = rng.choice(["L1", "L2", "S1", "S2"])
        direction = Direction.IN if lane in ("L1", "S1") else Direction.OUT
        if kind is SiteKind.HOTEL and rng.random() < 0.15:
            lane = "D1"
            direction = rng.choice([Direction.CHECKIN, Direction.CHECKIN, Direction.CHECKOUT])
        record = scan(
            direction,
            rng.choice(KEYS),
            ts,
            lane=lane,
            zone=rng.choice(["main", "main", "vip"]),
            cti=f"{i:032x}" if rng.random() < 0.7 else None,
            allow=rng.random() < 0.9,
            minor=rng.choice([True, False, None]),
            stay_id=rng.choice(["a", "b", f"room:{i % 3}@{i}"])
            if direction is Direction.CHECKIN
            else None,
        )
        records.append(record)
        if lane in sensor_lanes and record.decision.verdict is Verdict.ALLOW:
            records.append(passage(record, ts + 1, passed=rng.random() < 0.85))
            ts += 1
    return records


@pytest.mark.parametrize("kind", list(SiteKind))
@pytest.mark.parametrize("seed", range(4))
def test_replay_from_the_journal_equals_live_state(kind, seed):
    """State built live (with clock ticks between records) equals a fresh replay of the same
    records in seq order, daily resets included."""
    sensors = frozenset({"S1", "S2"})
    records = journal(seed, kind, sensors)
    options = {"site_id": SITE, "kind": kind, "daily_reset": dt.time(4, 0), "replay_max": 50}
    live = SiteState(**options)
    rng = random.Random(seed)
    for record in records:
        if rng.random() < 0.3:
            live.advance(record.ts - rng.uniform(0, 1))
        live.apply(record, sensor=record.lane_id in sensors)
    end = records[-1].ts + 10
    live.advance(end)
    rebuilt = SiteState(**options)
    assert rebuilt.replay(records, sensor_lanes=sensors, now=end) == len(records)
    assert rebuilt.snapshot() == live.snapshot()
    assert live.last_reset is not None


def test_replay_is_fast_enough_for_a_busy_journal():
    """Applying 100,000 records takes well under a few seconds (O(1) per record)."""
    records = [
        scan(Direction.IN if i % 2 == 0 else Direction.OUT, KEYS[i % 40], T0 + i, cti=f"{i:032x}")
        for i in range(100_000)
    ]
    state = SiteState(site_id=SITE, kind=SiteKind.VENUE, daily_reset=dt.time(4, 0))
    started = time.perf_counter()
    state.replay(records)
    assert time.perf_counter() - started < 5
