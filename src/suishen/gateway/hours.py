"""The time profiles and holiday calendar in effect: the config's, merged with the hub's bundles
(issue 13, item 1).

- Calendar: the newest (by its own version, ``time_profiles.newer``) of the one shipped with
  this version, the config's ``[hours] calendar_file`` and the last good calendar bundle.
- Profiles and roster groups: the config's ``[time_profiles.NAME]`` and ``[hours] groups``, and
  the roster bundle's "time_profiles" and "groups"; a name in both is the config's (logged once
  per name). A lane's ``time_profile`` names a config profile (the config checks it).

:class:`GatewayHours` holds the config's part; :meth:`GatewayHours.snapshot` binds it with the
lists into :class:`HoursSnapshot` (what a lane's LaneInfo carries); :meth:`GatewayHours.apply`
swaps a fresh snapshot into every pipeline's LaneInfo (the service calls it when a roster or
calendar bundle is installed), so the policy stays a pure function of the LaneInfo it is given.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import zoneinfo
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import structlog

from suishen.gateway.config.tree import GatewayConfig
from suishen.gateway.lists import Lists
from suishen.gateway.policy import LaneInfo
from suishen.protocol.time_profiles import (
    HolidayCalendar,
    SiteHours,
    TimeProfile,
    bundled_calendar,
    newer,
)

log = structlog.get_logger("suishen.gateway.hours")

__all__ = ["GatewayHours", "HoursSnapshot"]


class _HasLane(Protocol):
    lane: LaneInfo


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class HoursSnapshot:
    """The calendar, profiles and groups in effect at one moment."""

    calendar: HolidayCalendar
    calendar_source: str  # "shipped", "config" or "bundle"
    zone: dt.tzinfo
    profiles: Mapping[str, TimeProfile]
    groups: Mapping[str, SiteHours]  # roster group -> its profile bound to calendar and zone

    def lane(self, name: str | None) -> SiteHours | None:
        """The SiteHours of a lane's ``time_profile`` (None: the lane has none)."""
        if name is None:
            return None
        return SiteHours(profile=self.profiles[name], calendar=self.calendar, zone=self.zone)

    def status(self) -> dict[str, Any]:
        """The calendar in effect, for /status."""
        return {
            "version": self.calendar.version,
            "region": self.calendar.region,
            "source": self.calendar_source,
            "profiles": sorted(self.profiles),
            "groups": sorted(self.groups),
        }


class GatewayHours:
    """The config's profiles, groups and calendar; merged with the lists on demand."""

    def __init__(
        self,
        *,
        profiles: Mapping[str, TimeProfile],
        groups: Mapping[str, str],
        calendar: HolidayCalendar,
        calendar_source: str,
        timezone: str,
    ) -> None:
        self._profiles = dict(profiles)
        self._groups = dict(groups)
        self._calendar = calendar
        self._calendar_source = calendar_source
        self._zone = zoneinfo.ZoneInfo(timezone)
        self._logged: set[str] = set()

    @classmethod
    def from_config(cls, config: GatewayConfig) -> GatewayHours:
        shipped = bundled_calendar()
        configured = config.hours.read_calendar()  # the shipped one when no calendar_file
        calendar = newer(shipped, configured)
        return cls(
            profiles={n: p.profile(n) for n, p in config.time_profiles.items()},
            groups=config.hours.groups,
            calendar=calendar,
            calendar_source="shipped" if calendar is shipped else "config",
            timezone=config.site.timezone,
        )

    def snapshot(self, lists: Lists) -> HoursSnapshot:
        """The calendar, profiles and groups in effect with these lists."""
        calendar, source = self._calendar, self._calendar_source
        held = lists.calendar
        if held is not None and newer(calendar, held) is held:
            calendar, source = held, "bundle"
        hub = lists.roster.hours
        profiles = {**hub.profiles}
        for name, profile in self._profiles.items():
            if name in profiles:
                self._clash(f"time_profiles.{name}")
            profiles[name] = profile
        groups = {**hub.groups}
        for group, name in self._groups.items():
            if group in groups:
                self._clash(f"hours.groups.{group}")
            groups[group] = name
        return HoursSnapshot(
            calendar=calendar,
            calendar_source=source,
            zone=self._zone,
            profiles=profiles,
            groups={
                group: SiteHours(profile=profiles[name], calendar=calendar, zone=self._zone)
                for group, name in groups.items()
                if name in profiles
            },
        )

    def apply(
        self, lists: Lists, pipelines: Iterable[_HasLane], lane_profiles: Mapping[str, str | None]
    ) -> HoursSnapshot:
        """Swap the hours in effect into each pipeline's LaneInfo (``lane_profiles``: lane id
        -> its config ``time_profile``)."""
        snapshot = self.snapshot(lists)
        for pipeline in pipelines:
            lane = pipeline.lane
            pipeline.lane = dataclasses.replace(
                lane,
                hours=snapshot.lane(lane_profiles.get(lane.lane_id)),
                group_hours=snapshot.groups,
            )
        return snapshot

    def _clash(self, key: str) -> None:
        if key not in self._logged:
            self._logged.add(key)
            log.warning("the config's definition wins over the hub's roster bundle", key=key)
