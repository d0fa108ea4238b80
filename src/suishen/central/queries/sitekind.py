"""The site a site-scoped page asks about: in the caller's scope, stored, and of the right kind.

Every hotel and construction query starts here, so an out-of-scope site, an unknown one and one
of another kind all answer the same NotFound (an out-of-scope site is never confirmed).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Final
from zoneinfo import ZoneInfo

from suishen.central.connection import Connection
from suishen.central.errors import BadRequest, NotFound
from suishen.central.scope import Scope

MAX_SITE_ID: Final = 64  # sites.site_id CHECK (0001)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SiteRef:
    """A site the caller may see: its id, kind, display name and IANA time zone."""

    site_id: str
    kind: str
    name: str
    timezone: str

    @property
    def zone(self) -> dt.tzinfo:
        """The site's time zone (UTC when the stored name is not one: logged by nobody, shown
        as UTC rather than failing the page)."""
        return zone_of(self.timezone)

    def local_day(self, now: dt.datetime) -> dt.date:
        """The calendar day at the site when it is ``now``."""
        return now.astimezone(self.zone).date()

    def day_bounds(self, day: dt.date) -> tuple[dt.datetime, dt.datetime]:
        """[start, end) of the site's local calendar day, in UTC."""
        start = dt.datetime.combine(day, dt.time(), tzinfo=self.zone)
        end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=self.zone)
        return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def zone_of(name: str) -> dt.tzinfo:
    """The IANA zone ``name``, or UTC when it names none (a bad sites.timezone)."""
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError):  # ZoneInfoNotFoundError is a KeyError; bad paths ValueError
        return dt.UTC


def check_site_id(site_id: str) -> str:
    """A site id as a parameter: 1..64 characters, else BadRequest (400)."""
    if not 1 <= len(site_id) <= MAX_SITE_ID:
        raise BadRequest("a site id is 1 to 64 characters", field="site_id")
    return site_id


async def require_site(con: Connection, scope: Scope, site_id: str, kind: str) -> SiteRef:
    """The site if in ``scope``, stored and of ``kind``; else NotFound (the same answer for
    each, so a site manager learns nothing about another site)."""
    scope.require(check_site_id(site_id))
    row = await con.fetchrow(
        "SELECT site_id, kind, name, timezone FROM sites WHERE site_id = $1 AND kind = $2",
        site_id,
        kind,
    )
    if row is None:
        raise NotFound(f"no {kind} site {site_id!r}", site_id=site_id)
    return SiteRef(**dict(row))


# Built once; the scope clause is constant text, its value is bound as $1.
_SITES_OF_KIND_SQL: Final = f"""
    SELECT site_id, kind, name, timezone FROM sites
    WHERE kind = $2 AND {Scope.sql("$1")} ORDER BY site_id
"""  # noqa: S608


async def sites_of_kind(con: Connection, scope: Scope, kind: str) -> tuple[SiteRef, ...]:
    """The sites of ``kind`` in ``scope``, by id (the pages' site pickers)."""
    rows = await con.fetch(_SITES_OF_KIND_SQL, scope.sql_param(), kind)
    return tuple(SiteRef(**dict(row)) for row in rows)


def check_aware(now: dt.datetime | None) -> None:
    """A parameter time must carry its zone (BadRequest naming ``now`` otherwise)."""
    if now is not None and now.tzinfo is None:
        raise BadRequest("a time must carry its time zone", field="now")


async def now_or_database(con: Connection, now: dt.datetime | None) -> dt.datetime:
    """``now`` when given, else the database's clock."""
    if now is not None:
        return now
    value: dt.datetime = await con.fetchval("SELECT now()")
    return value
