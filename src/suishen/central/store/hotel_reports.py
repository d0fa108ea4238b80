"""A hotel desk's changes to stays: marking a foreign guest's stay reported, and its room
(DESIGN §5; issue 10).

``mark_reported`` sets ``stays.reported_at`` once, for a foreign guest's stay at a hotel in the
caller's scope, and writes an audit row in the same transaction.  A stay outside the scope, of
another site kind, unknown, or of a domestic guest is NotFound (never confirmed); a stay already
reported is left as it was (the first report's time stands) and says so.

``set_room`` records the room the desk gave a stay (the derivation makes stays from scans,
which carry no room); audited the same way.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Final

from suishen.central.connection import Connection
from suishen.central.errors import BadRequest, NotFound
from suishen.central.queries.hotel import DOMESTIC, HOTEL, StayKey
from suishen.central.queries.sitekind import require_site
from suishen.central.scope import Scope
from suishen.central.store import audit


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Reported:
    """The outcome: when the stay counts as reported, and whether this call did it."""

    reported_at: dt.datetime
    changed: bool


async def mark_reported(
    con: Connection, scope: Scope, site_id: str, key: StayKey, *, actor: str
) -> Reported:
    """Record that a foreign guest's stay was reported to the police now (audited)."""
    await require_site(con, scope, site_id, HOTEL)
    async with con.transaction():
        row = await con.fetchrow(
            """
            SELECT person_key, reported_at FROM stays
            WHERE site_id = $1 AND checkin_gateway_id = $2 AND checkin_seq = $3
              AND checkin_ts = $4 AND checkin_journal_id = $6
              AND nationality IS NOT NULL AND nationality <> $5
            FOR UPDATE
            """,
            site_id,
            key.gateway_id,
            key.seq,
            key.checkin_ts,
            DOMESTIC,
            key.journal_id,
        )
        if row is None:
            raise NotFound("no such foreign guest's stay", site_id=site_id)
        if row["reported_at"] is not None:
            return Reported(reported_at=row["reported_at"], changed=False)
        reported_at: dt.datetime = await con.fetchval(
            "UPDATE stays SET reported_at = now() WHERE site_id = $1 AND checkin_gateway_id = $2 "
            "AND checkin_seq = $3 AND checkin_ts = $4 AND checkin_journal_id = $5 "
            "RETURNING reported_at",
            site_id,
            key.gateway_id,
            key.seq,
            key.checkin_ts,
            key.journal_id,
        )
        await audit.record(
            con,
            actor,
            "stay_reported",
            person_key=row["person_key"],
            site_id=site_id,
            gateway_id=key.gateway_id,
            journal_id=key.journal_id,
            seq=key.seq,
            checkin_ts=key.checkin_ts.isoformat(),
        )
    return Reported(reported_at=reported_at, changed=True)


MAX_ROOM: Final = 16


def check_room(room: str) -> str | None:
    """A room as typed at the desk: trimmed, 1-16 printable characters ('' clears it)."""
    text = room.strip()
    if not text:
        return None
    if len(text) > MAX_ROOM or not text.isprintable():
        raise BadRequest(f"a room is at most {MAX_ROOM} printable characters", field="room")
    return text


async def set_room(
    con: Connection, scope: Scope, site_id: str, key: StayKey, room: str, *, actor: str
) -> str | None:
    """Record the room of a guest's stay (the desk's assignment; the derivation keeps it):
    the stays-by-room list and the minors' guardian check read it.  Audited; returns the room
    (None: cleared).  NotFound for a stay not at this hotel or outside the scope."""
    value = check_room(room)
    await require_site(con, scope, site_id, HOTEL)
    async with con.transaction():
        row = await con.fetchrow(
            "UPDATE stays SET room = $5 WHERE site_id = $1 AND checkin_gateway_id = $2 "
            "AND checkin_seq = $3 AND checkin_ts = $4 AND checkin_journal_id = $6 "
            "RETURNING person_key",
            site_id,
            key.gateway_id,
            key.seq,
            key.checkin_ts,
            value,
            key.journal_id,
        )
        if row is None:
            raise NotFound("no such stay", site_id=site_id)
        await audit.record(
            con, actor, "stay_room", person_key=row["person_key"], site_id=site_id, room=value,
            gateway_id=key.gateway_id, journal_id=key.journal_id, seq=key.seq,
            checkin_ts=key.checkin_ts.isoformat(),
        )  # fmt: skip
    return value
