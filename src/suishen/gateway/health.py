"""What /health says: ok, degraded (with every reason) or down (issue 14, item 5).

    down      the gateway cannot record a scan (not started, stopping, journal full): 503
    degraded  it decides and records, but something an operator must look at is wrong: a
              device not connected, no trust list (every code would be refused), a list that
              is stale or failed to load, the hub unreachable or refusing this gateway, the
              journal near full, the client certificate expiring within 30 days: 200, with
              the reasons
    ok        none of that: 200

A list the hub never published (version 0, nothing held) is not stale: an empty watchlist or
roster is a fact of the deployment, not a fault. Only the trust list is needed to decide.
The function is pure: the service passes what it holds and the time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from suishen.gateway.lists import NOT_PUBLISHED

HealthStatus = Literal["ok", "degraded", "down"]
CERT_WARN_S = 30 * 86400  # the client certificate's expiry is a reason this far ahead


@dataclass(frozen=True, slots=True, kw_only=True)
class DeviceHealth:
    lane_id: str
    device_id: str
    state: str  # protocol.device_state.DeviceState value
    since: float | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ListHealth:
    kind: str
    version: int
    entries: int
    age_s: float | None
    problem: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthReport:
    status: HealthStatus
    reasons: tuple[str, ...]

    @property
    def serving(self) -> bool:
        """Whether /health answers 200 (ok or degraded)."""
        return self.status != "down"


def iso(wall: float | None) -> str | None:
    """POSIX seconds as ISO 8601 UTC, for the humans reading /status beside the seconds."""
    if wall is None:
        return None
    return dt.datetime.fromtimestamp(wall, dt.UTC).isoformat(timespec="seconds")


def is_stale(item: ListHealth, stale_after_s: float) -> bool:
    """Held and older than the limit; a list never published is not stale."""
    return item.version > 0 and item.age_s is not None and item.age_s > stale_after_s


def assess(
    *,
    ready: bool,
    stopping: bool,
    journal_full: bool,
    journal_alarm: bool,
    devices: Iterable[DeviceHealth],
    lists: Iterable[ListHealth],
    stale_after_s: float,
    upload: Mapping[str, Any] | None,
    cert_expires_in_s: float | None = None,
) -> HealthReport:
    """The gateway's health from what it holds (see the module docstring)."""
    down = []
    if not ready:
        down.append("starting")
    if stopping:
        down.append("stopping")
    if journal_full:
        down.append("journal full: scans cannot be recorded")
    if down:
        return HealthReport(status="down", reasons=tuple(down))
    reasons = []
    for device in devices:
        if device.state != "connected":
            since = f" since {iso(device.since)}" if device.since is not None else ""
            reasons.append(
                f"device {device.device_id} (lane {device.lane_id}) {device.state}{since}"
            )
    for item in lists:
        if item.problem is not None and item.problem != NOT_PUBLISHED:
            reasons.append(f"{item.kind} list: {item.problem}")
        elif item.kind == "trust" and item.entries == 0:
            reasons.append("no trust list yet: every code is refused (unknown_kid)")
        elif is_stale(item, stale_after_s):
            reasons.append(f"{item.kind} list stale: issued {round(item.age_s or 0)} s ago")
    if journal_alarm:
        reasons.append("journal near full")
    if upload is not None:
        if upload.get("forbidden"):
            reasons.append("hub refuses this gateway (403): check its registration")
        elif upload.get("hub_up") is False:
            reasons.append(f"hub unreachable: {upload.get('last_error')}")
    if cert_expires_in_s is not None and cert_expires_in_s < CERT_WARN_S:
        days = cert_expires_in_s / 86400
        reasons.append(
            "client certificate expired: rotate it (`suishen hub gateway reissue`)"
            if days < 0
            else f"client certificate expires in {days:.0f} days: rotate it soon"
        )
    return HealthReport(status="degraded" if reasons else "ok", reasons=tuple(reasons))
