"""Time profiles and the holiday calendar (issue 13, item 1): table-driven at every boundary (a
minute before and after each edge, midnight, a daily reset at 03:00, a make-up Saturday, a public
holiday), and every malformed input refused with the field it names."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from suishen.protocol.time_profiles import (
    HolidayCalendar,
    TimeProfileError,
    admits,
    bundled_calendar,
    newer,
    parse_calendar,
    parse_profile,
    parse_profiles,
)

WORKING_DAYS = {day: ["06:00-20:00"] for day in ("mon", "tue", "wed", "thu", "fri")}
PROFILES = parse_profiles(
    {
        "subcontractor": WORKING_DAYS,  # holidays closed; a make-up Saturday counts as Monday
        "garage": {
            day: ["06:00-23:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
        }
        | {"holiday": ["08:00-20:00"]},
        "night-shift": {"mon": ["00:00-03:00", "22:00-24:00"], "tue": ["00:00-03:00"]},
    }
)
CALENDAR = parse_calendar(
    {
        "version": 1,
        "region": "CN",
        "holidays": ["2026-10-01", "2026-10-02"],
        "workdays": ["2026-10-10"],  # a Saturday worked to make up the bridge
    }
)


def at(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


@pytest.mark.parametrize(
    ("profile", "local", "admitted"),
    [
        # 2026-12-07 is a Monday: the window's edges, a minute either side.
        ("subcontractor", "2026-12-07T05:59", False),
        ("subcontractor", "2026-12-07T06:00", True),
        ("subcontractor", "2026-12-07T19:59", True),
        ("subcontractor", "2026-12-07T20:00", False),  # the end is exclusive
        ("subcontractor", "2026-12-05T12:00", False),  # an ordinary Saturday
        ("subcontractor", "2026-10-10T05:59", False),  # the make-up Saturday: a Monday's hours
        ("subcontractor", "2026-10-10T06:00", True),
        ("subcontractor", "2026-10-10T20:00", False),
        ("subcontractor", "2026-10-01T12:00", False),  # a public holiday (a Thursday): closed
        ("garage", "2026-12-07T23:00", False),  # closed at night
        ("garage", "2026-12-07T22:59", True),
        ("garage", "2026-10-02T07:59", False),  # holiday hours
        ("garage", "2026-10-02T08:00", True),
        ("night-shift", "2026-12-07T21:59", False),
        ("night-shift", "2026-12-07T22:00", True),
        ("night-shift", "2026-12-07T23:59", True),  # up to midnight...
        ("night-shift", "2026-12-08T00:00", True),  # ...and on from midnight (Tuesday)
        ("night-shift", "2026-12-08T02:59", True),
        ("night-shift", "2026-12-08T03:00", False),  # the daily reset hour closes the window
        ("night-shift", "2026-12-07T00:00", True),  # Monday's own early window
    ],
)
def test_admits_at_every_boundary(profile: str, local: str, admitted: bool) -> None:
    """Whether the profile admits at that local time."""
    assert admits(PROFILES[profile], CALENDAR, at(local)) is admitted


@pytest.mark.parametrize(
    ("body", "field", "problem"),
    [
        (
            {"mon": ["06:00-20:00", "19:00-21:00"]},
            "p.mon",
            "windows overlap (06:00-20:00 and 19:00-21:00)",
        ),
        ({"mon": ["20:00-06:00"]}, "p.mon[0]", "ends before it starts"),
        ({"mon": ["06:00-06:00"]}, "p.mon[0]", "ends before it starts"),
        ({"mon": ["6-20"]}, "p.mon[0]", 'must be "HH:MM-HH:MM"'),
        ({"mon": ["24:00-24:00"]}, "p.mon[0]", "not a time of day"),
        ({"mon": ["06:00-25:00"]}, "p.mon[0]", "not a time of day"),
        ({"mon": "06:00-20:00"}, "p.mon", "must be a list"),
        ({"monday": ["06:00-20:00"]}, "p.monday", "unknown key"),
        ({"workday": "someday"}, "p.workday", "must be one of"),
    ],
)
def test_malformed_profiles_name_the_field(body: dict, field: str, problem: str) -> None:
    """Each malformed profile is refused whole, naming the field."""
    with pytest.raises(TimeProfileError) as caught:
        parse_profile("p", body, field="p")
    assert caught.value.field == field
    assert problem in caught.value.problem


@pytest.mark.parametrize(
    ("document", "field"),
    [
        (
            {"version": 1, "region": "CN", "holidays": ["2026-02-30"], "workdays": []},
            "calendar.holidays[0]",
        ),
        (
            {"version": 1, "region": "CN", "holidays": ["2026-1-1"], "workdays": []},
            "calendar.holidays[0]",
        ),
        (
            {"version": 1, "region": "CN", "holidays": [], "workdays": [20261010]},
            "calendar.workdays[0]",
        ),
        ({"version": 0, "region": "CN", "holidays": [], "workdays": []}, "calendar.version"),
        ({"version": True, "region": "CN", "holidays": [], "workdays": []}, "calendar.version"),
        ({"version": 1, "holidays": [], "workdays": []}, "calendar.region"),
        (
            {"version": 1, "region": "CN", "holidays": ["2026-10-10"], "workdays": ["2026-10-10"]},
            "calendar.workdays",
        ),
        ({"version": 1, "region": "CN", "workdays": []}, "calendar.holidays"),
    ],
)
def test_a_bad_calendar_names_the_field(document: dict, field: str) -> None:
    """A holiday file with a bad date (or anything else wrong) is refused, naming where."""
    with pytest.raises(TimeProfileError) as caught:
        parse_calendar(document)
    assert caught.value.field == field


def test_the_bundled_calendar_is_2026s() -> None:
    """The shipped calendar parses; the 2026 National Day week is a holiday, its make-up
    Saturday (10 October) a working day, and a newer version replaces it, an older one not."""
    calendar = bundled_calendar()
    assert calendar.region == "CN"
    assert dt.date(2026, 10, 1) in calendar.holidays
    assert dt.date(2026, 10, 10) in calendar.workdays
    assert admits(PROFILES["subcontractor"], calendar, at("2026-10-10T09:00"))
    assert not admits(PROFILES["subcontractor"], calendar, at("2026-10-05T09:00"))
    later = HolidayCalendar(
        version=calendar.version + 1, region="CN", holidays=frozenset(), workdays=frozenset()
    )
    assert newer(calendar, later) is later
    assert newer(later, calendar) is later


# Naive on purpose: profiles read the site's local wall time.
@given(st.datetimes(min_value=dt.datetime(2026, 1, 1), max_value=dt.datetime(2026, 12, 31)))  # noqa: DTZ001
def test_a_profile_open_all_week_admits_except_on_holidays(local: dt.datetime) -> None:
    """An always-open profile without holiday hours admits exactly on non-holidays."""
    always = parse_profile(
        "always",
        {day: ["00:00-24:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
        field="p",
    )
    calendar = bundled_calendar()
    assert admits(always, calendar, local) is (local.date() not in calendar.holidays)


def test_profiles_round_trip_through_json() -> None:
    """Profiles are data: the same document parsed from JSON text gives the same answers."""
    document = json.loads(json.dumps({"subcontractor": WORKING_DAYS}))
    assert parse_profiles(document) == {"subcontractor": PROFILES["subcontractor"]}
