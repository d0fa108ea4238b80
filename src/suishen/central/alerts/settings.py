"""The hub's ``[alerts]`` config section: deadlines per route and step, reminders, webhook
delivery (DESIGN §7). Part of HubConfig (central/config.py); listed in HUB_SETTINGS.md.

Deadlines count from the alert's receipt at the hub. The defaults follow the district's response
targets: police accept within 1 minute at a key site (``sites.key_site``) and 3 minutes
elsewhere; every alert handled and fed back within 24 hours.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from suishen.protocol.vocabulary import AlertRoute
from suishen.settings import SettingError, setting

__all__ = ["AlertsSection", "RouteDeadlines"]


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RouteDeadlines:
    """How long after receipt each step of one route's alerts is due."""

    accept_key_site: dt.timedelta
    accept: dt.timedelta
    dispatch: dt.timedelta
    handle: dt.timedelta
    feed_back: dt.timedelta
    remind_share: float


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class AlertsSection:
    """The alert loop: deadlines, reminders, webhooks."""

    police_accept_key_site_s: int = setting(
        "seconds a police alert at a key site may wait to be accepted", 60, ge=1
    )
    police_accept_s: int = setting(
        "seconds a police alert elsewhere may wait to be accepted", 180, ge=1
    )
    staff_accept_s: int = setting("seconds a site-staff alert may wait to be accepted", 300, ge=1)
    city_ops_accept_s: int = setting(
        "seconds a city-operations alert may wait to be accepted", 300, ge=1
    )
    dispatch_s: int = setting("seconds from receipt by which an alert is dispatched", 900, ge=1)
    handle_s: int = setting("seconds from receipt by which an alert is handled", 86400, ge=1)
    feed_back_s: int = setting("seconds from receipt by which an alert is fed back", 86400, ge=1)
    remind_share: float = setting(
        "a reminder is logged when this share of the time from receipt to a deadline is left",
        0.2,
        ge=0.0,
        le=0.99,
    )
    reminder_interval_s: float = setting("seconds between passes that log reminders", 15.0)
    outbox_poll_s: float = setting(
        "seconds between looks at the webhook outbox when nothing wakes the sender", 2.0
    )
    webhook_timeout_s: float = setting("seconds one webhook delivery may take", 10.0)
    webhook_retry_initial_s: float = setting(
        "delay before the first retry of a failed delivery (doubling, full jitter)", 2.0
    )
    webhook_retry_cap_s: float = setting("longest delay between two delivery attempts", 600.0)
    webhook_max_attempts: int = setting(
        "attempts per delivery before it is given up (logged 'gave_up')", 12, ge=1
    )

    def __post_init__(self) -> None:
        for key in (
            "reminder_interval_s",
            "outbox_poll_s",
            "webhook_timeout_s",
            "webhook_retry_initial_s",
        ):
            if not getattr(self, key) > 0:
                raise SettingError(key, "must be > 0")
        if self.webhook_retry_cap_s < self.webhook_retry_initial_s:
            raise SettingError("webhook_retry_cap_s", "must be >= webhook_retry_initial_s")
        if self.police_accept_key_site_s > self.police_accept_s:
            raise SettingError("police_accept_key_site_s", "must be <= police_accept_s")

    def deadlines(self) -> dict[AlertRoute, RouteDeadlines]:
        """The deadlines of every route (what alert_deadlines holds)."""
        seconds = dt.timedelta(seconds=1)
        accept = {
            AlertRoute.POLICE: (self.police_accept_key_site_s, self.police_accept_s),
            AlertRoute.STAFF: (self.staff_accept_s, self.staff_accept_s),
            AlertRoute.CITY_OPS: (self.city_ops_accept_s, self.city_ops_accept_s),
        }
        return {
            route: RouteDeadlines(
                accept_key_site=key * seconds,
                accept=other * seconds,
                dispatch=self.dispatch_s * seconds,
                handle=self.handle_s * seconds,
                feed_back=self.feed_back_s * seconds,
                remind_share=self.remind_share,
            )
            for route, (key, other) in accept.items()
        }
