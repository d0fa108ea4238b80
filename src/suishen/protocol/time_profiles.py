"""Time profiles: when a lane or a roster group admits people (DESIGN §5; issue 13). Pure.

A profile names, per kind of day, the windows of local time it admits::

    {"name": "subcontractor",
     "mon": ["06:00-20:00"], "tue": ["06:00-20:00"], ..., "fri": ["06:00-20:00"],
     "holiday": [],                 # a public holiday: closed (the default)
     "workday": "mon"}              # a make-up working day (调休) counts as a Monday

A window is "HH:MM-HH:MM" in the site's local time, start inclusive, end exclusive, end
"24:00" for the end of the day; a window never crosses midnight (write two). Windows of one day
must not overlap. A weekday that is absent is closed.

Which kind a date is comes from a HolidayCalendar, which is data with a version (a signed
bundle updates it; the gateway ships the current year's): a date in ``holidays`` is a holiday;
a date in ``workdays`` (a weekend day worked to make up a bridge, 调休) counts as the weekday
its profile names (Monday unless ``workday`` says otherwise); any other date is its weekday.

Everything is checked when parsed: a problem raises TimeProfileError naming the field
(``profiles.subcontractor.mon[1]: 20:00-06:00 ends before it starts``), so nothing is
half-applied. ``admits(profile, calendar, local)`` answers for a naive local datetime.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final

from suishen.protocol.errors import ProtocolError

WEEKDAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WINDOW = re.compile(r"([0-2]\d):([0-5]\d)-([0-2]\d):([0-5]\d)")
MINUTES_PER_DAY: Final = 24 * 60


class TimeProfileError(ProtocolError, ValueError):
    """A profile or a holiday calendar is malformed; ``field`` names where."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


@dataclass(frozen=True, slots=True, kw_only=True)
class Window:
    """[start, end) in minutes after local midnight."""

    start: int
    end: int

    def __contains__(self, minute: int) -> bool:
        return self.start <= minute < self.end


@dataclass(frozen=True, slots=True, kw_only=True)
class TimeProfile:
    name: str
    days: Mapping[str, tuple[Window, ...]]  # "mon".."sun" and "holiday"
    workday_as: str  # the weekday a make-up working day counts as


@dataclass(frozen=True, slots=True, kw_only=True)
class HolidayCalendar:
    version: int
    region: str
    holidays: frozenset[dt.date]
    workdays: frozenset[dt.date]

    def day_kind(self, day: dt.date, profile: TimeProfile) -> str:
        """ "holiday", or the weekday key whose windows apply on ``day``."""
        if day in self.holidays:
            return "holiday"
        if day in self.workdays:
            return profile.workday_as
        return WEEKDAYS[day.weekday()]


@dataclass(frozen=True, slots=True, kw_only=True)
class SiteHours:
    """A profile bound to a calendar and a site's time zone: what a lane or group carries."""

    profile: TimeProfile
    calendar: HolidayCalendar
    zone: dt.tzinfo

    def admits_at(self, now: float) -> bool:
        """Whether the profile admits at POSIX time ``now`` (in the site's local time)."""
        local = dt.datetime.fromtimestamp(now, self.zone).replace(tzinfo=None)
        return admits(self.profile, self.calendar, local)


def admits(profile: TimeProfile, calendar: HolidayCalendar, local: dt.datetime) -> bool:
    """Whether ``profile`` admits at the naive local time ``local`` (the site's zone)."""
    minute = local.hour * 60 + local.minute
    return any(
        minute in window for window in profile.days[calendar.day_kind(local.date(), profile)]
    )


# --------------------------------------------------------------------------- parsing


def parse_profiles(
    document: Mapping[str, Any], *, field: str = "profiles"
) -> dict[str, TimeProfile]:
    """Named profiles from ``{name: {mon: [...], ..., holiday: [...], workday: "mon"}}``."""
    if not isinstance(document, Mapping):
        raise TimeProfileError(field, "must be a table of named profiles")
    return {
        str(name): parse_profile(str(name), body, field=f"{field}.{name}")
        for name, body in document.items()
    }


def parse_profile(name: str, body: Any, *, field: str) -> TimeProfile:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}", name):
        raise TimeProfileError(field, "a profile name is 1-64 letters, digits, '_', '.' or '-'")
    if not isinstance(body, Mapping):
        raise TimeProfileError(field, "must be a table")
    unknown = set(body) - {*WEEKDAYS, "holiday", "workday"}
    if unknown:
        raise TimeProfileError(f"{field}.{sorted(unknown)[0]}", "unknown key")
    days = {key: _windows(body.get(key, []), f"{field}.{key}") for key in (*WEEKDAYS, "holiday")}
    workday_as = body.get("workday", "mon")
    if workday_as not in WEEKDAYS:
        raise TimeProfileError(f"{field}.workday", f"must be one of {', '.join(WEEKDAYS)}")
    return TimeProfile(name=name, days=days, workday_as=str(workday_as))


def _windows(value: Any, field: str) -> tuple[Window, ...]:
    if not isinstance(value, list):
        raise TimeProfileError(field, 'must be a list of "HH:MM-HH:MM" windows')
    windows = [_window(item, f"{field}[{index}]") for index, item in enumerate(value)]
    ordered = sorted(windows, key=lambda w: w.start)
    for before, after in itertools.pairwise(ordered):
        if after.start < before.end:
            raise TimeProfileError(field, f"windows overlap ({_show(before)} and {_show(after)})")
    return tuple(ordered)


def _window(text: Any, field: str) -> Window:
    match = _WINDOW.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise TimeProfileError(field, f'must be "HH:MM-HH:MM", got {text!r}')
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if h1 > 23 or (h2 > 23 and end != MINUTES_PER_DAY):
        raise TimeProfileError(field, f"{text} is not a time of day (24:00 only as an end)")
    if end <= start:
        raise TimeProfileError(field, f"{text} ends before it starts (split it at midnight)")
    return Window(start=start, end=end)


def _show(window: Window) -> str:
    return f"{_hhmm(window.start)}-{_hhmm(window.end)}"


def _hhmm(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def parse_calendar(document: Any) -> HolidayCalendar:
    """A holiday calendar from ``{"version", "region", "holidays": [...], "workdays": [...]}``."""
    if not isinstance(document, Mapping):
        raise TimeProfileError("calendar", "must be an object")
    version = document.get("version")
    if type(version) is not int or version < 1:
        raise TimeProfileError("calendar.version", "must be a positive integer")
    region = document.get("region")
    if not isinstance(region, str) or not region:
        raise TimeProfileError("calendar.region", "must be text, e.g. CN")
    holidays = _dates(document.get("holidays"), "calendar.holidays")
    workdays = _dates(document.get("workdays"), "calendar.workdays")
    both = holidays & workdays
    if both:
        day = min(both).isoformat()
        raise TimeProfileError("calendar.workdays", f"{day} is also a holiday")
    return HolidayCalendar(version=version, region=region, holidays=holidays, workdays=workdays)


def _dates(value: Any, field: str) -> frozenset[dt.date]:
    if not isinstance(value, list):
        raise TimeProfileError(field, 'must be a list of "YYYY-MM-DD" dates')
    found = set()
    for index, item in enumerate(value):
        day = _date(item)
        if day is None:
            raise TimeProfileError(f"{field}[{index}]", f"not a date: {item!r}")
        found.add(day)
    return frozenset(found)


def _date(item: Any) -> dt.date | None:
    """A "YYYY-MM-DD" date, or None."""
    if not isinstance(item, str) or len(item) != 10:
        return None
    try:
        return dt.date.fromisoformat(item)
    except ValueError:
        return None


def bundled_calendar() -> HolidayCalendar:
    """The calendar shipped with this version (protocol/data/holidays-cn.json), used until a
    signed calendar bundle brings a newer one."""
    text = (resources.files("suishen.protocol") / "data" / "holidays-cn.json").read_text("utf-8")
    return parse_calendar(json.loads(text))


def newer(current: HolidayCalendar, candidate: HolidayCalendar) -> HolidayCalendar:
    """The calendar to hold: a candidate replaces the current one only with a higher version."""
    return candidate if candidate.version > current.version else current


__all__ = [
    "WEEKDAYS",
    "HolidayCalendar",
    "SiteHours",
    "TimeProfile",
    "TimeProfileError",
    "Window",
    "admits",
    "bundled_calendar",
    "newer",
    "parse_calendar",
    "parse_profile",
    "parse_profiles",
]
