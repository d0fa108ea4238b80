"""Alerts as people see them: the inbox and one alert with its timeline and deliveries (DESIGN §7).

Every function takes the caller's Scope: an alert at a site outside it does not exist for the
caller (NotFound, never "forbidden"). Overdue and reminder flags are computed here, in SQL, from
the deadlines each alert was given at receipt (``accept_by`` .. ``feedback_by``) and the route's
reminder share (``alert_deadlines.remind_share``): the step due next is the one after the
alert's state; it is overdue once its deadline has passed, and "due soon" (the reminder) once
less than ``remind_share`` of the time from receipt to that deadline is left.

The inbox pages by keyset on ``alert_id`` (newest first): ``next_before`` of a page is the
``before_id`` of the next.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

import msgspec

from suishen.central.connection import Connection
from suishen.central.errors import BadRequest, NotFound
from suishen.central.scope import Scope
from suishen.protocol.alert_loop import LoopState, allowed_actions
from suishen.protocol.vocabulary import AlertRoute, AlertStep, values

__all__ = [
    "AlertDetail",
    "AlertEvent",
    "AlertView",
    "Delivery",
    "InboxPage",
    "InboxParams",
    "alert_detail",
    "alert_view",
    "inbox",
]

MAX_PAGE: Final = 200

# The step due next after each state, and the alerts column holding its deadline.
NEXT_STEP: Final = {
    AlertStep.RECEIVED: (AlertStep.ACCEPTED, "accept_by"),
    AlertStep.ACCEPTED: (AlertStep.DISPATCHED, "dispatch_by"),
    AlertStep.DISPATCHED: (AlertStep.HANDLED, "handle_by"),
    AlertStep.HANDLED: (AlertStep.FED_BACK, "feedback_by"),
}
DUE_SQL: Final = (
    "CASE a.state "
    + " ".join(f"WHEN '{state}' THEN a.{column}" for state, (_, column) in NEXT_STEP.items())
    + " END"
)


class AlertView(msgspec.Struct, frozen=True, kw_only=True):
    """One alert, its state and the deadline of the step it waits for."""

    alert_id: int
    site_id: str
    lane_id: str | None
    kind: str
    route: str
    level: str | None
    detail: str
    ts: dt.datetime
    received_at: dt.datetime
    state: str
    dispatched_to: str | None
    accept_by: dt.datetime | None
    dispatch_by: dt.datetime | None
    handle_by: dt.datetime | None
    feedback_by: dt.datetime | None
    next_step: str | None  # the step due next (None once closed or fed back awaits close)
    due_at: dt.datetime | None
    overdue: bool
    due_soon: bool  # within the reminder window, not yet overdue
    actions: tuple[str, ...]  # what the loop allows next


class AlertEvent(msgspec.Struct, frozen=True, kw_only=True):
    """One step of the timeline: who, when, the note, and where a dispatch went."""

    step: str
    actor: str
    ts: dt.datetime
    note: str
    route: str | None
    deadline: dt.datetime | None


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    """One webhook delivery attempt."""

    delivery_id: int
    route: str
    step: str
    attempt: int
    status: str
    response_code: int | None
    error: str
    ts: dt.datetime


class AlertDetail(msgspec.Struct, frozen=True, kw_only=True):
    alert: AlertView
    timeline: tuple[AlertEvent, ...]
    deliveries: tuple[Delivery, ...]
    pending_deliveries: int  # in the outbox, not yet delivered nor given up


class InboxParams(msgspec.Struct, frozen=True, kw_only=True):
    """Inbox filters (all optional) and the page."""

    state: str | None = None
    route: str | None = None
    overdue: bool | None = None
    site_id: str | None = None
    open_only: bool = False  # everything but closed
    before_id: int | None = None
    limit: int = 50

    def __post_init__(self) -> None:
        if self.state is not None and self.state not in values(AlertStep):
            raise BadRequest("unknown state", field="state")
        if self.route is not None and self.route not in values(AlertRoute):
            raise BadRequest("unknown route", field="route")
        if not 1 <= self.limit <= MAX_PAGE:
            raise BadRequest(f"limit must be 1..{MAX_PAGE}", field="limit")
        if self.before_id is not None and not 0 < self.before_id < 2**63:
            raise BadRequest("before_id out of range", field="before_id")
        if self.site_id is not None and not 0 < len(self.site_id) <= 64:
            raise BadRequest("site_id length", field="site_id")


class InboxPage(msgspec.Struct, frozen=True, kw_only=True):
    rows: tuple[AlertView, ...]
    next_before: int | None


# Column names and the CASE are this module's constants, never input (hence the S608 noqa).
_VIEW_SQL: Final = f"""
SELECT * FROM (
    SELECT a.alert_id, a.site_id, a.lane_id, a.kind, a.route, a.level, a.detail, a.ts,
           a.received_at, a.state, a.dispatched_to, a.accept_by, a.dispatch_by, a.handle_by,
           a.feedback_by, {DUE_SQL} AS due_at,
           coalesce(d.remind_share, 0.2) AS remind_share
    FROM alerts a LEFT JOIN alert_deadlines d ON d.route = a.route
    WHERE {Scope.sql("$1", "a.site_id")} AND ($2::bigint IS NULL OR a.alert_id = $2)
      AND ($3::text IS NULL OR a.state = $3) AND ($4::text IS NULL OR a.route = $4)
      AND ($5::text IS NULL OR a.site_id = $5) AND ($6::bigint IS NULL OR a.alert_id < $6)
      AND (NOT $7::boolean OR a.state <> 'closed')
) s
WHERE $8::boolean IS NULL OR coalesce(s.due_at < now(), false) = $8
ORDER BY s.alert_id DESC
LIMIT $9
"""  # noqa: S608
_NOW_SQL: Final = "SELECT now()"


def _view(row: Any, now: dt.datetime) -> AlertView:
    state = LoopState(row["state"])
    due: dt.datetime | None = row["due_at"]
    step = NEXT_STEP.get(state)
    overdue = due is not None and due < now
    due_soon = False
    if due is not None and not overdue:
        remind_at = due - (due - row["received_at"]) * float(row["remind_share"])
        due_soon = now >= remind_at
    return AlertView(
        alert_id=row["alert_id"],
        site_id=row["site_id"],
        lane_id=row["lane_id"],
        kind=row["kind"],
        route=row["route"],
        level=row["level"],
        detail=row["detail"],
        ts=row["ts"],
        received_at=row["received_at"],
        state=state.value,
        dispatched_to=row["dispatched_to"],
        accept_by=row["accept_by"],
        dispatch_by=row["dispatch_by"],
        handle_by=row["handle_by"],
        feedback_by=row["feedback_by"],
        next_step=None if step is None else step[0].value,
        due_at=due,
        overdue=overdue,
        due_soon=due_soon,
        actions=tuple(a.value for a in allowed_actions(state)),
    )


async def inbox(con: Connection, scope: Scope, params: InboxParams) -> InboxPage:
    """The alerts in ``scope`` matching ``params``, newest first, one page."""
    rows = await con.fetch(
        _VIEW_SQL,
        scope.sql_param(),
        None,
        params.state,
        params.route,
        params.site_id,
        params.before_id,
        params.open_only,
        params.overdue,
        params.limit + 1,
    )
    now: dt.datetime = await con.fetchval(_NOW_SQL)
    page = [_view(row, now) for row in rows[: params.limit]]
    more = len(rows) > params.limit
    return InboxPage(rows=tuple(page), next_before=page[-1].alert_id if more and page else None)


async def alert_view(con: Connection, scope: Scope, alert_id: int) -> AlertView:
    """One alert in ``scope``; NotFound if there is none (or it is another site's)."""
    if not 0 < alert_id < 2**63:
        raise NotFound("no such alert", alert_id=alert_id)
    rows = await con.fetch(
        _VIEW_SQL, scope.sql_param(), alert_id, None, None, None, None, False, None, 1
    )
    if not rows:
        raise NotFound("no such alert", alert_id=alert_id)
    now: dt.datetime = await con.fetchval(_NOW_SQL)
    return _view(rows[0], now)


async def alert_detail(con: Connection, scope: Scope, alert_id: int) -> AlertDetail:
    """One alert with its full timeline (oldest first) and every webhook delivery attempt."""
    alert = await alert_view(con, scope, alert_id)
    events = await con.fetch(
        "SELECT step, actor, ts, note, route, deadline FROM alert_events "
        "WHERE alert_id = $1 ORDER BY ts, event_id",
        alert_id,
    )
    deliveries = await con.fetch(
        "SELECT delivery_id, route, step, attempt, status, response_code, error, ts "
        "FROM webhook_deliveries WHERE alert_id = $1 ORDER BY ts, delivery_id",
        alert_id,
    )
    pending = await con.fetchval(
        "SELECT count(*) FROM webhook_outbox WHERE alert_id = $1 AND done_at IS NULL", alert_id
    )
    return AlertDetail(
        alert=alert,
        timeline=tuple(AlertEvent(**dict(row)) for row in events),
        deliveries=tuple(Delivery(**dict(row)) for row in deliveries),
        pending_deliveries=int(pending),
    )
