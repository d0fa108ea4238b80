"""The derivation's settings (the hub's ``[visits]`` section; derive.py ``configure``)."""

from __future__ import annotations

import dataclasses
import datetime as dt

from suishen.settings import SettingError, setting

__all__ = ["DeriveSettings"]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class DeriveSettings:
    """Visits and stays derived from the scans."""

    in_ingest: bool = setting(
        "derive visits and stays in the ingest transaction (off: nothing derives them; "
        "for measuring the ingest without it)",
        True,
    )
    reset_hour: int = setting(
        "hour of the day (in the site's timezone) at which a visit still open is closed "
        "(close_reason 'reset')",
        4,
        ge=0,
        le=23,
    )
    max_visit_hours: float = setting(
        "longest visit: one still open this long after its in is closed (close_reason "
        "'max_length')",
        16.0,
    )
    max_stay_days: int = setting(
        "longest hotel stay: one with no checkout this long after its checkin is closed",
        30,
        ge=1,
    )

    def __post_init__(self) -> None:
        if not 0 < self.max_visit_hours <= 24 * 7:
            raise SettingError("max_visit_hours", "must be > 0 and at most 168")

    @property
    def max_visit(self) -> dt.timedelta:
        return dt.timedelta(hours=self.max_visit_hours)

    @property
    def max_stay(self) -> dt.timedelta:
        return dt.timedelta(days=self.max_stay_days)
