"""Hotel queries on constructed stays: who is in house by room, today's check-ins, minors without
a guardian, the foreign-guest list with its 24-hour deadline, and the audited "reported" action;
each keeps to its scope (another site's hotel is NotFound, as is an unknown one)."""

from __future__ import annotations

import datetime as dt

import asyncpg
import pytest

from suishen.central.errors import BadRequest, NotFound
from suishen.central.partitions import day_of, ensure_partitions_for
from suishen.central.queries.hotel import (
    CheckinsParams,
    ForeignGuestParams,
    HotelParams,
    StayKey,
    checkins_today,
    foreign_guests,
    stays_now,
    unaccompanied_minors,
)
from suishen.central.scope import Scope
from suishen.central.store.hotel_reports import mark_reported, set_room
from tests.central.conftest import TODAY
from tests.central.hubkit import person, register

# 14:00 in Shanghai: the site's day began yesterday 16:00 UTC (inside the template's partitions).
NOW = dt.datetime.combine(TODAY, dt.time(6, 0), tzinfo=dt.UTC)
H = dt.timedelta(hours=1)
HOTEL = "hotel-a"
OTHER = "hotel-b"
MINE = Scope.sites([HOTEL])


async def stay(
    con: asyncpg.Connection,
    seq: int,
    checkin: dt.datetime,
    *,
    site_id: str = HOTEL,
    room: str | None = None,
    nationality: str = "CHN",
    minor: bool = False,
    guardian: int | None = None,
    checkout: dt.datetime | None = None,
    name: str = "张*明",
    reported_at: dt.datetime | None = None,
    close_by: dt.datetime | None = None,
    journal: str = "",
) -> StayKey:
    """A stay (as the derivation makes it) and its check-in scan (the masks staff see)."""
    gateway = f"gw-{site_id}"
    await con.execute(
        """
        INSERT INTO scans (gateway_id, seq, ts, site_id, lane_id, direction, format, verdict,
                           person_key, nationality, minor, masked_name, masked_number,
                           journal_id)
        VALUES ($1, $2, $3, $4, 'desk', 'checkin', 'MRZ', 'allow', $5, $6, $7, $8, 'E*****321',
                $9)
        """,
        gateway, seq, checkin, site_id, person(seq), nationality, minor, name, journal,
    )  # fmt: skip
    await con.execute(
        """
        INSERT INTO stays (site_id, person_key, checkin_gateway_id, checkin_seq, checkin_ts,
                           checkout_ts, close_reason, nationality, minor, room,
                           guardian_person_key, reported_at, close_by, checkin_journal_id)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
        """,
        site_id, person(seq), gateway, seq, checkin, checkout,
        None if checkout is None else "out", nationality, minor, room,
        None if guardian is None else person(guardian), reported_at, close_by, journal,
    )  # fmt: skip
    return StayKey(gateway_id=gateway, journal_id=journal, seq=seq, checkin_ts=checkin)


@pytest.fixture
async def hotels(con: asyncpg.Connection) -> asyncpg.Connection:
    await register(con, f"gw-{HOTEL}", HOTEL, kind="hotel")
    await register(con, f"gw-{OTHER}", OTHER, kind="hotel")
    await register(con, "gw-site", "build-1", kind="construction")
    return con


async def test_stays_by_room_and_checkins_today(hotels: asyncpg.Connection) -> None:
    """In house = checked in by now, not out, not past close_by; by room, unknown rooms last.
    Today's check-ins follow the site's local day (Asia/Shanghai), out or not; another hotel's
    stays never show."""
    con = hotels
    await stay(con, 1, NOW - 20 * H, room="302")  # yesterday 18:00 local: not today
    await stay(con, 2, NOW - 5 * H, room="101")
    await stay(con, 3, NOW - 4 * H, room="101", checkout=NOW - H)  # left an hour ago
    await stay(con, 4, NOW - 3 * H)  # no room known
    await stay(con, 5, NOW + H, room="101")  # after "now": not in house yet
    await stay(con, 6, NOW - 2 * H, site_id=OTHER, room="101")
    await stay(con, 7, NOW - 6 * H, room="303", close_by=NOW - H)  # past its longest stay

    rows = await stays_now(con, MINE, HotelParams(site_id=HOTEL, now=NOW))
    assert [(r.room, r.key.seq) for r in rows] == [("101", 2), ("302", 1), (None, 4)]
    assert rows[0].masked_name == "张*明" and rows[0].masked_number == "E*****321"
    assert rows[0].person_key == person(2)

    today = await checkins_today(con, MINE, CheckinsParams(site_id=HOTEL, now=NOW))
    assert [r.key.seq for r in today] == [7, 2, 3, 4, 5]  # 08:00 .. 15:00 local today
    yesterday = await checkins_today(
        con, MINE, CheckinsParams(site_id=HOTEL, day=TODAY - dt.timedelta(days=1), now=NOW)
    )
    assert [r.key.seq for r in yesterday] == [1]


async def test_minors_without_a_guardian(hotels: asyncpg.Connection) -> None:
    """A minor is accompanied by their named guardian in house, or by an adult in the same room;
    a guardian who checked out, a minor room-mate, or no room at all leaves the flag on."""
    con = hotels
    await stay(con, 10, NOW - 5 * H, room="201")  # adult
    await stay(con, 11, NOW - 5 * H, room="201", minor=True)  # with an adult room-mate
    await stay(con, 12, NOW - 5 * H, room="202", minor=True, guardian=10)  # guardian in house
    await stay(con, 13, NOW - 5 * H, room="203", minor=True, guardian=14)  # guardian left
    await stay(con, 14, NOW - 5 * H, room="204", checkout=NOW - H)
    await stay(con, 15, NOW - 5 * H, room="205", minor=True)  # two minors together
    await stay(con, 16, NOW - 5 * H, room="205", minor=True)
    await stay(con, 17, NOW - 5 * H, minor=True)  # no room, no guardian
    await stay(con, 18, NOW - 5 * H, site_id=OTHER, room="201", minor=True)

    flagged = await unaccompanied_minors(con, MINE, HotelParams(site_id=HOTEL, now=NOW))
    assert [r.key.seq for r in flagged] == [13, 15, 16, 17]
    everyone = await stays_now(con, MINE, HotelParams(site_id=HOTEL, now=NOW))
    assert {r.key.seq: r.unaccompanied_minor for r in everyone} == {
        10: False, 11: False, 12: False, 13: True, 15: True, 16: True, 17: True,
    }  # fmt: skip


async def test_foreign_guests_deadline_and_reported_action(hotels: asyncpg.Connection) -> None:
    """Foreign = not CHN (HKG counts). Deadline = check-in + 24 h: due before it, overdue after;
    a report before it is 'reported', after it 'reported_late'. Old reported stays leave the list
    after `days`; unreported ones never do. Reporting sets reported_at once, audited."""
    con = hotels
    due = await stay(con, 20, NOW - 23 * H, nationality="GBR")
    await ensure_days(con, NOW - 30 * H)
    overdue = await stay(con, 21, NOW - 25 * H, nationality="HKG")
    await stay(con, 22, NOW - 30 * H, nationality="USA", reported_at=NOW - 29 * H)
    await stay(con, 23, NOW - 30 * H, nationality="DEU", reported_at=NOW - 5 * H)
    await stay(con, 24, NOW - 2 * H)  # domestic: not on the list
    await stay(con, 25, NOW - 2 * H, nationality="FRA", site_id=OTHER)

    guests = await foreign_guests(con, MINE, ForeignGuestParams(site_id=HOTEL, now=NOW))
    assert [(g.stay.key.seq, g.status, g.overdue) for g in guests] == [
        (21, "overdue", True),
        (20, "due", False),
        (22, "reported", False),
        (23, "reported_late", True),
    ]
    assert guests[1].deadline == NOW + H

    done = await mark_reported(con, MINE, HOTEL, overdue, actor="mgr-a")
    assert done.changed
    again = await mark_reported(con, MINE, HOTEL, overdue, actor="mgr-a")
    assert not again.changed and again.reported_at == done.reported_at
    audit = await con.fetch(
        "SELECT actor, action, person_key, coalesce(site_id, target->>'site_id') AS site FROM audit"
    )
    assert [(a["actor"], a["action"], a["person_key"], a["site"]) for a in audit] == [
        ("mgr-a", "stay_reported", person(21), HOTEL)
    ]

    # The domestic guest, another hotel's guest and a made-up key: NotFound, nothing changed.
    with pytest.raises(NotFound):
        await mark_reported(
            con, MINE, HOTEL, StayKey(gateway_id="gw-hotel-a", seq=24, checkin_ts=NOW - 2 * H),
            actor="mgr-a",
        )  # fmt: skip
    with pytest.raises(NotFound):
        await mark_reported(con, MINE, OTHER, due, actor="mgr-a")
    with pytest.raises(NotFound):
        await mark_reported(con, MINE, HOTEL, StayKey(gateway_id="x", seq=1, checkin_ts=NOW),
                            actor="mgr-a")  # fmt: skip
    assert await con.fetchval("SELECT count(*) FROM stays WHERE reported_at IS NOT NULL") == 3

    one_day = await foreign_guests(con, MINE, ForeignGuestParams(site_id=HOTEL, days=1, now=NOW))
    assert [g.stay.key.seq for g in one_day] == [20]  # 21 is reported now, and 25 h old


async def ensure_days(con: asyncpg.Connection, when: dt.datetime) -> None:
    """The partitions of the day of ``when`` (older than the template's yesterday)."""
    for table in ("scans", "stays"):
        await ensure_partitions_for(con, table, [day_of(when)])


async def test_scope_kind_and_bad_params(hotels: asyncpg.Connection) -> None:
    """Another site, an unknown one, a construction site: NotFound alike; an overlong site id, a
    quote-laden one, a naive time or an out-of-range window: BadRequest or NotFound, never SQL."""
    con = hotels
    for site in (OTHER, "nope", "build-1"):
        with pytest.raises(NotFound):
            await stays_now(con, Scope.sites([HOTEL, "build-1"]), HotelParams(site_id=site))
    with pytest.raises(NotFound):
        await stays_now(con, Scope.everywhere(), HotelParams(site_id="x' OR '1'='1"))
    assert await stays_now(con, Scope.everywhere(), HotelParams(site_id=OTHER)) == ()
    with pytest.raises(BadRequest):
        HotelParams(site_id="s" * 65)
    with pytest.raises(BadRequest):
        HotelParams(site_id=HOTEL, now=dt.datetime(2026, 1, 1))  # noqa: DTZ001
    with pytest.raises(BadRequest):
        ForeignGuestParams(site_id=HOTEL, days=29)
    for token in (
        "", "a|b|c", "gw|1", "gw|1|5", "gw||0|5", "gw||1|" + "9" * 18, "gw||-1|5",
        "g" * 65 + "||1|1", "gw|ABCDEF0123456789|1|5", "gw|0123|1|5", "gw|a|b|1|5",
    ):  # fmt: skip
        with pytest.raises(BadRequest):
            StayKey.parse(token)
    for journal in ("", "0123456789abcdef"):
        key = StayKey(
            gateway_id="gw-hotel-a",
            journal_id=journal,
            seq=7,
            checkin_ts=NOW + dt.timedelta(microseconds=3),
        )
        assert StayKey.parse(key.token) == key


async def test_two_journals_stays_at_one_seq_and_time_are_told_apart(
    hotels: asyncpg.Connection,
) -> None:
    """A recreated journal numbers from 1 again, so two foreign guests' stays can share
    gateway, seq and check-in time and differ only in the journal (the stays key holds it,
    0017).  The list names each by its own key, and reporting one, or setting its room,
    changes that stay only (matching without the journal changed both)."""
    con = hotels
    old, new = "00000000000000aa", "00000000000000bb"
    checkin = NOW - 2 * H
    first = await stay(con, 31, checkin, nationality="GBR", journal=old)
    second = await stay(con, 31, checkin, nationality="USA", journal=new)
    guests = await foreign_guests(con, MINE, ForeignGuestParams(site_id=HOTEL, days=1, now=NOW))
    assert {g.stay.key for g in guests} >= {first, second}

    done = await mark_reported(con, MINE, HOTEL, second, actor="mgr-a")
    assert done.changed
    reported = await con.fetch(
        "SELECT checkin_journal_id FROM stays WHERE reported_at IS NOT NULL AND checkin_seq = 31"
    )
    assert [r["checkin_journal_id"] for r in reported] == [new]

    assert await set_room(con, MINE, HOTEL, first, "301", actor="mgr-a") == "301"
    rooms = await con.fetch("SELECT checkin_journal_id, room FROM stays WHERE checkin_seq = 31")
    assert {r["checkin_journal_id"]: r["room"] for r in rooms} == {old: "301", new: None}
