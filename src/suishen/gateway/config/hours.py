"""Time profiles in the gateway config: ``[time_profiles.NAME]`` and ``[hours]`` (issue 13).

    [time_profiles.garage]            # closed at night, every day
    mon = ["06:00-23:00"]             # ... through sun
    holiday = ["08:00-20:00"]         # public holidays (absent: closed)
    workday = "mon"                   # a make-up working day (调休) counts as this weekday

    [hours]
    calendar_file = "calendar.json"   # absent: the holiday calendar shipped with this version
    groups = { subcontractor-a = "working-days" }   # roster group -> time profile

    [[lanes]]
    time_profile = "garage"           # entries outside it: denied, outside_hours

The windows' grammar and the calendar's format: suishen.protocol.time_profiles.
"""

# setting()/optional() wrap dataclasses.field (RUF009).
# ruff: noqa: RUF009

from __future__ import annotations

import dataclasses
import json
import zoneinfo
from pathlib import Path

from suishen.protocol.time_profiles import (
    WEEKDAYS,
    HolidayCalendar,
    SiteHours,
    TimeProfile,
    TimeProfileError,
    bundled_calendar,
    parse_calendar,
    parse_profile,
)
from suishen.settings import ConfigError, ConfigProblem, SettingError, optional, setting

_WINDOWS_HELP = 'windows of local time, "HH:MM-HH:MM" (end exclusive, "24:00" for midnight)'


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class TimeProfileSettings:
    """One named time profile: when entries are admitted, per kind of day."""

    mon: tuple[str, ...] = setting(f"Monday's {_WINDOWS_HELP}", ())
    tue: tuple[str, ...] = setting("Tuesday's windows", ())
    wed: tuple[str, ...] = setting("Wednesday's windows", ())
    thu: tuple[str, ...] = setting("Thursday's windows", ())
    fri: tuple[str, ...] = setting("Friday's windows", ())
    sat: tuple[str, ...] = setting("Saturday's windows", ())
    sun: tuple[str, ...] = setting("Sunday's windows", ())
    holiday: tuple[str, ...] = setting("a public holiday's windows (none: closed)", ())
    workday: str = setting("the weekday a make-up working day (调休) counts as: mon..sun", "mon")

    def __post_init__(self) -> None:
        self.profile("profile")

    def profile(self, name: str) -> TimeProfile:
        """The parsed profile; SettingError naming the key when malformed."""
        body = {key: list(getattr(self, key)) for key in (*WEEKDAYS, "holiday")}
        body["workday"] = self.workday  # type: ignore[assignment]
        try:
            return parse_profile(name, body, field="")
        except TimeProfileError as exc:
            raise SettingError(exc.field.lstrip("."), exc.problem) from None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class HoursSettings:
    """The holiday calendar and the roster groups' time profiles."""

    calendar_file: Path | None = optional(
        "a holiday calendar (JSON: version, region, holidays, workdays); absent: the one "
        "shipped with this version"
    )
    groups: dict[str, str] = setting(
        "roster group -> time profile name (a worker of the group is admitted only inside it)",
        factory=dict,
    )

    def read_calendar(self) -> HolidayCalendar:
        """The calendar in effect; ConfigError naming hours.calendar_file when unusable."""
        if self.calendar_file is None:
            return bundled_calendar()
        try:
            document = json.loads(self.calendar_file.read_text(encoding="utf-8"))
            return parse_calendar(document)
        except OSError as exc:
            problem = f"cannot read {self.calendar_file}: {exc.strerror}"
        except ValueError as exc:  # JSON and TimeProfileError alike
            problem = f"{self.calendar_file}: {exc}"
        raise ConfigError([ConfigProblem("hours.calendar_file", problem)])


def site_hours(
    profiles: dict[str, TimeProfileSettings],
    name: str,
    calendar: HolidayCalendar,
    timezone: str,
) -> SiteHours:
    """The named profile bound to the calendar and the site's zone."""
    return SiteHours(
        profile=profiles[name].profile(name), calendar=calendar, zone=zoneinfo.ZoneInfo(timezone)
    )
