"""What `suishen doctor` reports, for a gateway and for a hub: one finding per line. Pure.

A Check has a level (ok, warning, error), what it is about and what to do. ``expiry_check``
grades a certificate's expiry: an error once expired, a warning within CERT_WARN_DAYS.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

CERT_WARN_DAYS = 30

Level = Literal["ok", "warning", "error"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Check:
    level: Level
    topic: str
    message: str

    def line(self) -> str:
        return f"{self.level:<7} {self.topic}: {self.message}"


def expiry_check(
    topic: str, name: str, not_after: dt.datetime, now: dt.datetime, *, fix: str
) -> Check:
    """``name`` (a path or an id) expiring at ``not_after``: graded against ``now``."""
    days = (not_after - now).total_seconds() / 86400
    when = not_after.isoformat(timespec="seconds")
    if days < 0:
        return Check(level="error", topic=topic, message=f"{name} expired {when}: {fix}")
    if days < CERT_WARN_DAYS:
        return Check(
            level="warning",
            topic=topic,
            message=f"{name} expires {when} (in {days:.0f} days): rotate it soon ({fix})",
        )
    return Check(level="ok", topic=topic, message=f"{name} valid until {when}")
