"""A hotel's foreign-guest registration report: marking a stay reported (DESIGN §5; issue 10).

``mark_reported`` sets ``stays.reported_at`` once, for a foreign guest's stay at a hotel in the
caller's scope, and writes an audit row in the same transaction.  A stay outside the scope, of
another site kind, unknown, or of a domestic guest is NotFound (never confirmed); a stay already
reported is left as it was (the first report's time stands) and says so.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from suishen.central.connection import Connection
from suishen.central.errors import NotFound
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
              AND checkin_ts = $4 AND nationality IS NOT NULL AND nationality <> $5
            FOR UPDATE
            """,
            site_id,
            key.gateway_id,
            key.seq,
            key.checkin_ts,
            DOMESTIC,
        )
        if row is None:
            raise NotFound("no such foreign guest's stay", site_id=site_id)
        if row["reported_at"] is not None:
            return Reported(reported_at=row["reported_at"], changed=False)
        reported_at: dt.datetime = await con.fetchval(
            "UPDATE stays SET reported_at = now() WHERE site_id = $1 AND checkin_gateway_id = $2 "
            "AND checkin_seq = $3 AND checkin_ts = $4 RETURNING reported_at",
            site_id,
            key.gateway_id,
            key.seq,
            key.checkin_ts,
        )
        await audit.record(
            con,
            actor,
            "stay_reported",
            person_key=row["person_key"],
            site_id=site_id,
            gateway_id=key.gateway_id,
            seq=key.seq,
            checkin_ts=key.checkin_ts.isoformat(),
        )
    return Reported(reported_at=reported_at, changed=True)
