"""The alert loop at the hub: each step taken under the one state table (protocol.alert_loop),
with who, when and a note, the deadlines set at receipt, and the webhooks a step sends.

- ``on_received(con, alert_ids)``: called by ingest (both lanes) in its transaction for newly
  stored alerts: gives each the deadline of every step from its route's ``alert_deadlines``
  row and its site's ``key_site`` flag, and queues the ``received`` webhook to its route.
- ``advance(con, scope, alert_id, action, actor, note)``: one step of the loop. An alert
  outside ``scope`` is NotFound; an action the table does not allow from the alert's state is
  a Conflict (nothing changes). A dispatch names the route it goes to (default: the alert's
  own) and queues the ``dispatched`` webhook to that route.
- ``store_deadlines(con, section)``: the hub's ``[alerts]`` config into ``alert_deadlines``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Protocol

import structlog

from suishen.central.alerts.settings import AlertsSection
from suishen.central.connection import Connection
from suishen.central.errors import BadRequest, Conflict, NotFound
from suishen.central.queries.alerts import AlertView, alert_view
from suishen.central.scope import Scope
from suishen.protocol.alert_loop import AlertAction, LoopState, next_state
from suishen.protocol.errors import TransitionError
from suishen.protocol.vocabulary import AlertRoute, AlertStep

__all__ = [
    "MAX_NOTE",
    "Named",
    "advance",
    "enqueue_webhooks",
    "on_received",
    "set_key_site",
    "store_deadlines",
]

log = structlog.get_logger("suishen.central.alerts")

MAX_NOTE: Final = 2000
MAX_ACTOR: Final = 128
WEBHOOK_CHANNEL: Final = "suishen_webhooks"

# The deadline a step sets: the one of the step due after it (received's is set at receipt).
_DEADLINE_AFTER: Final = {
    AlertStep.ACCEPTED: "dispatch_by",
    AlertStep.DISPATCHED: "handle_by",
    AlertStep.HANDLED: "feedback_by",
}


_LOCK_ALERT: Final = (
    "SELECT state, route FROM alerts WHERE alert_id = $1 AND "  # noqa: S608 - a constant
    + Scope.sql("$2")
    + " FOR UPDATE"
)
_INSERT_STEP: Final = (
    "INSERT INTO alert_events (alert_id, step, actor, note, route, deadline) "  # noqa: S608
    "SELECT $1, $2, $3, $4, $5, CASE $2 "
    + " ".join(f"WHEN '{step}' THEN a.{column}" for step, column in _DEADLINE_AFTER.items())
    + " END FROM alerts a WHERE a.alert_id = $1"
)


class Named(Protocol):
    """Whoever acts: a hub user (auth.User) has a username."""

    @property
    def username(self) -> str: ...


_SET_DEADLINES: Final = """
UPDATE alerts a SET
    accept_by = a.received_at + CASE WHEN s.key_site THEN d.accept_key_site ELSE d.accept END,
    dispatch_by = a.received_at + d.dispatch,
    handle_by = a.received_at + d.handle,
    feedback_by = a.received_at + d.feed_back
FROM alert_deadlines d, sites s
WHERE a.alert_id = ANY($1::bigint[]) AND d.route = a.route AND s.site_id = a.site_id
"""
_RECEIVED_DEADLINE: Final = """
UPDATE alert_events e SET deadline = a.accept_by FROM alerts a
WHERE a.alert_id = ANY($1::bigint[]) AND e.alert_id = a.alert_id AND e.step = 'received'
"""
# The webhook payload (docs/WEBHOOKS.md), fixed when queued; $3 overrides the route.
_ENQUEUE: Final = """
WITH queued AS (
    INSERT INTO webhook_outbox (alert_id, route, step, body)
    SELECT a.alert_id, w.route, $2::text, jsonb_build_object(
        'version', '1',
        'event', 'alert.' || $2::text,
        'route', w.route,
        'alert', jsonb_build_object(
            'alert_id', a.alert_id, 'site_id', a.site_id, 'lane_id', a.lane_id,
            'kind', a.kind, 'route', a.route, 'level', a.level, 'detail', a.detail,
            'state', a.state, 'dispatched_to', a.dispatched_to,
            'raised_at', a.ts, 'received_at', a.received_at,
            'deadlines', jsonb_build_object(
                'accept_by', a.accept_by, 'dispatch_by', a.dispatch_by,
                'handle_by', a.handle_by, 'feedback_by', a.feedback_by)),
        'callback', '/hooks/alerts/' || a.alert_id,
        'queued_at', now())::text
    FROM alerts a JOIN webhook_endpoints w
      ON w.route = coalesce($3::text, a.route) AND w.enabled
    WHERE a.alert_id = ANY($1::bigint[])
    RETURNING outbox_id
)
SELECT count(*) FROM queued
"""


async def enqueue_webhooks(
    con: Connection, alert_ids: Sequence[int], step: AlertStep, route: AlertRoute | None = None
) -> int:
    """Queue the ``step`` webhook of each alert to ``route`` (default: the alert's own route)
    if that route has an enabled endpoint; wake the sender at commit. Returns how many."""
    queued = int(await con.fetchval(_ENQUEUE, list(alert_ids), step.value, route))
    if queued:
        await con.execute("SELECT pg_notify($1, '')", WEBHOOK_CHANNEL)
    return queued


async def on_received(con: Connection, alert_ids: Sequence[int]) -> None:
    """Newly stored alerts (ingest's transaction): deadlines of every step, received webhook."""
    if not alert_ids:
        return
    ids = list(alert_ids)
    await con.execute(_SET_DEADLINES, ids)
    await con.execute(_RECEIVED_DEADLINE, ids)
    await enqueue_webhooks(con, ids, AlertStep.RECEIVED)


def _actor_name(actor: Named | str) -> str:
    name = actor if isinstance(actor, str) else actor.username
    if not 0 < len(name) <= MAX_ACTOR:
        raise BadRequest("actor name length", field="actor")
    return name


async def advance(  # noqa: PLR0917 - the contract's signature (brief: positional note)
    con: Connection,
    scope: Scope,
    alert_id: int,
    action: AlertAction | str,
    actor: Named | str,
    note: str = "",
    *,
    route: AlertRoute | str | None = None,
) -> AlertView:
    """Take one step of the loop (see the module docstring); return the alert after it."""
    try:
        action = AlertAction(action)
    except ValueError:
        raise BadRequest("unknown action", field="action") from None
    if len(note) > MAX_NOTE:
        raise BadRequest(f"a note holds at most {MAX_NOTE} characters", field="note")
    name = _actor_name(actor)
    target: AlertRoute | None = None
    if route is not None:
        if action is not AlertAction.DISPATCH:
            raise BadRequest("only a dispatch names a route", field="route")
        try:
            target = AlertRoute(route)
        except ValueError:
            raise BadRequest("unknown route", field="route") from None
    if not 0 < alert_id < 2**63:
        raise NotFound("no such alert", alert_id=alert_id)
    async with con.transaction():
        row = await con.fetchrow(
            _LOCK_ALERT,
            alert_id,
            scope.sql_param(),
        )
        if row is None:
            raise NotFound("no such alert", alert_id=alert_id)
        state = LoopState(row["state"])
        try:
            step = next_state(state, action)
        except TransitionError:
            raise Conflict(
                f"an alert that is {state.value} cannot take {action.value}",
                alert_id=alert_id,
                state=state.value,
                action=action.value,
            ) from None
        if action is AlertAction.DISPATCH and target is None:
            target = AlertRoute(row["route"])
        await con.execute(
            "UPDATE alerts SET state = $2, updated_at = now(), "
            "dispatched_to = coalesce($3, dispatched_to) WHERE alert_id = $1",
            alert_id,
            step.value,
            target,
        )
        await con.execute(
            _INSERT_STEP,
            alert_id,
            step.value,
            name,
            note,
            target,
        )
        if step is AlertStep.DISPATCHED:
            await enqueue_webhooks(con, [alert_id], step, target)
        log.info("alert_step", alert_id=alert_id, step=step.value, actor=name, route=target)
        return await alert_view(con, scope, alert_id)


async def store_deadlines(con: Connection, section: AlertsSection) -> None:
    """Write the configured deadlines of every route into alert_deadlines."""
    rows = [
        (
            route.value,
            d.accept_key_site,
            d.accept,
            d.dispatch,
            d.handle,
            d.feed_back,
            d.remind_share,
        )
        for route, d in section.deadlines().items()
    ]
    await con.executemany(
        "INSERT INTO alert_deadlines (route, accept_key_site, accept, dispatch, handle, "
        "feed_back, remind_share) VALUES ($1, $2, $3, $4, $5, $6, $7) "
        "ON CONFLICT (route) DO UPDATE SET accept_key_site = EXCLUDED.accept_key_site, "
        "accept = EXCLUDED.accept, dispatch = EXCLUDED.dispatch, handle = EXCLUDED.handle, "
        "feed_back = EXCLUDED.feed_back, remind_share = EXCLUDED.remind_share",
        rows,
    )


async def set_key_site(con: Connection, site_id: str, key_site: bool) -> None:
    """Mark a site as a key site (police accept deadline ``police_accept_key_site_s``) or not;
    alerts received from then on get the deadline. NotFound for an unknown site."""
    done = await con.fetchval(
        "UPDATE sites SET key_site = $2 WHERE site_id = $1 RETURNING true", site_id, key_site
    )
    if not done:
        raise NotFound("no such site", site_id=site_id)
