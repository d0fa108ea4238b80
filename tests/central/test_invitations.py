"""Visitor invitations at the hub (issue 13, item 3): store functions, scoping, audit, roster
bundle versions, expiry and bad input, on the real test PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import asyncpg
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from suishen.central.bundle_service import BundleService, read_body
from suishen.central.errors import Forbidden, NotFound
from suishen.central.store import invitations as inv
from suishen.central.store import users
from suishen.central.store.watchlist import Document
from suishen.protocol.bundles import open_bundle
from suishen.protocol.identity.cnid import cnid_check_digit
from suishen.protocol.listbodies import roster_invitations
from suishen.protocol.person import person_key
from suishen.protocol.vocabulary import Role
from tests.central.web.conftest import TEST_HASHER

PEPPER = b"p" * 32
SITE, OTHER = "tower-a", "tower-b"
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
HOUR = dt.timedelta(hours=1)


def ric(n: int) -> str:
    """A valid 18-digit resident ID number (Shanghai, born 1980), distinct per n."""
    body = f"31010119800101{n:03d}"
    return body + cnid_check_digit(body)


async def make_user(con: asyncpg.Connection, name: str, role: Role, *sites: str) -> Any:
    await users.add_user(con, name, role=role, password="a long password", hasher=TEST_HASHER)
    for site in sites:
        await users.grant_site(con, name, site)
    return await inv.named_inviter(con, name)


@pytest.fixture
async def people(con: asyncpg.Connection) -> dict[str, Any]:
    for site in (SITE, OTHER):
        await con.execute("INSERT INTO sites (site_id, kind) VALUES ($1, 'building')", site)
    return {
        "acme": await make_user(con, "acme", Role.TENANT, SITE),
        "globex": await make_user(con, "globex", Role.TENANT, SITE),
        "other": await make_user(con, "initech", Role.TENANT, OTHER),
        "manager": await make_user(con, "manager", Role.SITE_MANAGER, SITE),
        "analyst": await make_user(con, "analyst", Role.ANALYST),
    }


def request(n: int = 1, **over: Any) -> inv.InviteRequest:
    fields: dict[str, Any] = {
        "site_id": SITE,
        "valid_from": NOW - HOUR,
        "valid_until": NOW + 2 * HOUR,
        "document": Document(idt="RIC", idn=ric(n)),
        "name": "王小明",
        "lanes": ("lobby-in",),
    }
    fields.update(over)
    return inv.InviteRequest(**fields)


async def roster_version(con: asyncpg.Connection) -> int:
    return int(await con.fetchval("SELECT version FROM bundle_versions WHERE kind = 'roster'"))


async def invite(con: asyncpg.Connection, user: Any, req: inv.InviteRequest) -> inv.InvitationRow:
    return await inv.invite(con, user, req, pepper=PEPPER, now=NOW)


async def test_an_invitation_by_document_keeps_the_key_never_the_number(
    con: asyncpg.Connection, people: dict[str, Any]
) -> None:
    """Invite by resident ID: stored under HMAC(pepper, identity) with a masked name, the
    roster version moves on, one audit row; the number is in no table."""
    before = await roster_version(con)
    row = await invite(con, people["acme"], request())
    assert row.person_key == person_key(PEPPER, "RIC", ric(1))
    assert (row.tenant, row.masked_name, row.lanes) == ("acme", "王*明", ("lobby-in",))
    assert row.version == before + 1 == await roster_version(con)
    assert row.state(NOW) == "current"
    audit = await con.fetch("SELECT actor, action, person_key, site_id, target FROM audit")
    assert [(a["actor"], a["action"], a["site_id"]) for a in audit] == [
        ("acme", "invitation_add", SITE)
    ]
    assert json.loads(audit[0]["target"])["invitation_id"] == row.invitation_id
    dump = await con.fetchval(
        "SELECT string_agg(t::text, ' ') FROM (SELECT * FROM invitations) t"
    ) + "".join(a["target"] for a in audit)
    assert ric(1) not in dump and ric(1)[6:14] not in dump and "王小明" not in dump


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"valid_until": NOW - 2 * HOUR}, "valid_until"),  # ends before it starts
        ({"valid_until": NOW - HOUR}, "valid_until"),  # empty window
        ({"valid_until": NOW - HOUR + dt.timedelta(days=7, seconds=1)}, "valid_until"),  # > 7 d
        ({"valid_from": NOW - 3 * HOUR, "valid_until": NOW - 2 * HOUR}, "valid_until"),  # over
        (  # starts too far ahead
            {"valid_from": NOW + dt.timedelta(days=91), "valid_until": NOW + dt.timedelta(days=92)},
            "valid_from",
        ),
        ({"valid_from": dt.datetime(2026, 1, 1)}, "valid_from"),  # noqa: DTZ001 - no zone
        ({"document": Document(idt="RIC", idn=ric(1)[:-1] + "0")}, "id_number"),  # check digit
        ({"document": Document(idt="RIC", idn="1234")}, "id_number"),
        ({"document": Document(idt="PP", idn="E1234567")}, "nationality"),
        ({"document": Document(idt="XX", idn="E1234567")}, "id_type"),
        ({"document": None}, "document"),
        ({"document": None, "person_key": "ABC"}, "person_key"),
        ({"lanes": ("lobby in; drop",)}, "lanes"),
        ({"zones": tuple(f"z{i}" for i in range(33))}, "zones"),
        ({"name": "x" * 65}, "name"),
        ({"name": "王\x00明"}, "name"),
        ({"tenant": "globex"}, "tenant"),  # a tenant invites for itself only
    ],
)
async def test_bad_input_names_the_field_and_writes_nothing(
    con: asyncpg.Connection, people: dict[str, Any], over: dict[str, Any], field: str
) -> None:
    """Each bad field: InvitationInputError naming it; no invitation, no audit row, no new
    roster version."""
    before = await roster_version(con)
    with pytest.raises(inv.InvitationInputError) as caught:
        await invite(con, people["acme"], request(**over))
    assert caught.value.field == field
    assert ric(1) not in str(caught.value)
    assert await con.fetchval("SELECT count(*) FROM invitations") == 0
    assert await con.fetchval("SELECT count(*) FROM audit") == 0
    assert await roster_version(con) == before


async def test_without_a_pepper_a_document_is_refused(
    con: asyncpg.Connection, people: dict[str, Any]
) -> None:
    """A hub without a pepper cannot turn a number into a key: id_number is refused."""
    with pytest.raises(inv.InvitationInputError) as caught:
        await inv.invite(con, people["acme"], request(), pepper=None, now=NOW)
    assert caught.value.field == "id_number"


async def test_tenants_see_and_cancel_only_their_own(
    con: asyncpg.Connection, people: dict[str, Any]
) -> None:
    """A tenant lists only its invitations; another tenant's, or another site's, is NotFound
    (get and cancel); the site manager sees all and may invite for a tenant; an analyst may
    not invite; a cancel bumps the roster version, is audited, and happens once."""
    acme, globex, manager = people["acme"], people["globex"], people["manager"]
    mine = await invite(con, acme, request(1))
    theirs = await invite(con, globex, request(2))
    on_behalf = await invite(con, manager, request(3, tenant="acme"))
    assert on_behalf.tenant == "acme" and on_behalf.created_by == "manager"
    listed = {r.invitation_id for r in await inv.list_invitations(con, acme, SITE)}
    assert listed == {mine.invitation_id, on_behalf.invitation_id}
    everyone = {r.invitation_id for r in await inv.list_invitations(con, manager, SITE)}
    assert everyone == {mine.invitation_id, theirs.invitation_id, on_behalf.invitation_id}
    for call in (inv.get, inv.cancel):
        with pytest.raises(NotFound):
            await call(con, acme, theirs.invitation_id)
        with pytest.raises(NotFound):
            await call(con, people["other"], mine.invitation_id)
    with pytest.raises(NotFound):
        await inv.list_invitations(con, people["other"], SITE)
    with pytest.raises(NotFound):
        await invite(con, acme, request(4, site_id=OTHER))
    with pytest.raises(Forbidden):
        await invite(con, people["analyst"], request(5))
    with pytest.raises(inv.InvitationInputError):
        await invite(con, manager, request(6, tenant="initech"))  # not a tenant of this site

    before = await roster_version(con)
    cancelled = await inv.cancel(con, acme, mine.invitation_id)
    assert cancelled.state(NOW) == "cancelled" and cancelled.cancelled_by == "acme"
    assert await roster_version(con) == before + 1
    assert (
        await con.fetchval(
            "SELECT count(*) FROM audit WHERE action = 'invitation_cancel' AND actor = 'acme'"
        )
        == 1
    )
    with pytest.raises(NotFound):
        await inv.cancel(con, acme, mine.invitation_id)
    assert {r.invitation_id for r in await inv.list_invitations(con, acme, SITE)} == {
        on_behalf.invitation_id
    }
    past = await inv.list_invitations(con, acme, SITE, include_past=True)
    assert mine.invitation_id in {r.invitation_id for r in past}


async def test_the_roster_bundle_carries_live_invitations_and_expiry_drops_them(
    db_pool: asyncpg.Pool, people: dict[str, Any]
) -> None:
    """The signed roster of the site holds its live invitations (window, lanes) and not another
    site's or a cancelled one; when a window has ended, the bundle service's expiry pass makes
    a new version that leaves it out, by itself, once."""
    key = ed25519.Ed25519PrivateKey.generate()
    async with db_pool.acquire() as con:
        live = await invite(con, people["acme"], request(1))
        gone = await invite(con, people["acme"], request(2))
        await inv.cancel(con, people["acme"], gone.invitation_id)
        elsewhere = await invite(con, people["other"], request(3, site_id=OTHER))
    later = (NOW + 3 * HOUR).timestamp()
    service = BundleService(db_pool, key, clock=lambda: later)
    bundle = await service.get("roster", SITE)
    assert bundle is not None
    body = open_bundle(bundle.data, pinned_key=key.public_key(), kind="roster").body
    [(held_key, held)] = roster_invitations(body)
    assert held_key == live.person_key
    assert (held.site_id, held.lanes, held.zones) == (SITE, frozenset({"lobby-in"}), frozenset())
    assert (held.valid_from, held.valid_to) == (
        int(live.valid_from.timestamp()),
        int(live.valid_until.timestamp()),
    )

    async with db_pool.acquire() as con:
        expired = await service.expire_invitations(con)
        assert expired == [live.invitation_id, elsewhere.invitation_id]
        assert await service.expire_invitations(con) == []
        assert (
            await con.fetchval(
                "SELECT count(*) FROM audit WHERE action = 'invitation_expire' AND actor = 'system'"
            )
            == 2
        )
    await service.refresh()
    newer = await service.get("roster", SITE)
    assert newer is not None and newer.version == bundle.version + 1
    body = open_bundle(newer.data, pinned_key=key.public_key(), kind="roster").body
    assert roster_invitations(body) == []


async def test_arrivals_are_the_tenants_visitors_inside_their_windows(
    con: asyncpg.Connection, people: dict[str, Any]
) -> None:
    """Arrivals: scans at the site of an invited key inside its window, allowed or denied, with
    the invitation's masked name (a watchlist reason withheld from the tenant, not from the
    site manager); not a scan outside the window, at another site, of another
    person, or of another tenant's visitor."""
    mine = await invite(con, people["acme"], request(1))
    theirs = await invite(con, people["globex"], request(2))

    async def scan(seq: int, key: str, at: dt.datetime, site: str = SITE, **over: Any) -> None:
        await con.execute(
            "INSERT INTO scans (gateway_id, seq, ts, site_id, lane_id, direction, format, "
            "verdict, reason, person_key, masked_name) VALUES ('gw', $1, $2, $3, 'lobby-in', "
            "'in', 'SSC1', $4, $5, $6, '王*明')",
            seq, at, site, over.get("verdict", "allow"), over.get("reason"), key,
        )  # fmt: skip

    await scan(1, mine.person_key, NOW - dt.timedelta(minutes=30))
    await scan(2, mine.person_key, NOW - dt.timedelta(minutes=10), verdict="deny",
               reason="not_invited")  # fmt: skip
    await scan(3, mine.person_key, NOW - 2 * HOUR)  # before the window
    await scan(4, mine.person_key, NOW - dt.timedelta(minutes=5), site=OTHER)
    await scan(5, person_key(PEPPER, "RIC", ric(9)), NOW - dt.timedelta(minutes=5))
    await scan(6, theirs.person_key, NOW - dt.timedelta(minutes=5))
    await scan(7, mine.person_key, NOW - dt.timedelta(minutes=1), verdict="deny",
               reason="watchlist")  # fmt: skip
    seen = await inv.arrivals(con, people["acme"], SITE)
    assert [(a.invitation_id, a.verdict, a.reason, a.masked_name) for a in seen] == [
        (mine.invitation_id, "deny", "withheld", "王*明"),  # a tenant is not told why
        (mine.invitation_id, "deny", "not_invited", "王*明"),
        (mine.invitation_id, "allow", None, "王*明"),
    ]
    staff = await inv.arrivals(con, people["manager"], SITE)
    assert [a.reason for a in staff] == ["watchlist", None, "not_invited", None]
    with pytest.raises(NotFound):
        await inv.arrivals(con, people["other"], SITE)


async def test_the_roster_body_without_invitations_is_unchanged(
    con: asyncpg.Connection, people: dict[str, Any]
) -> None:
    """A site with no invitations: the roster body has no "invitations" key (older gateways
    read the same body as before)."""
    assert "invitations" not in await read_body(con, "roster", SITE)


async def test_the_running_bundle_service_expires_invitations_by_itself(
    db_pool: asyncpg.Pool, people: dict[str, Any]
) -> None:
    """Nobody acts: the bundle service's poll loop (its clock past the window) marks the
    invitation expired and the roster version moves on."""
    async with db_pool.acquire() as con:
        row = await invite(con, people["acme"], request(1))
    later = (NOW + 3 * HOUR).timestamp()
    service = BundleService(db_pool, ed25519.Ed25519PrivateKey.generate(), poll_s=0.05,
                            clock=lambda: later)  # fmt: skip
    await service.start()
    try:
        assert await service.wait_newer("roster", row.version, 10) == row.version + 1
    finally:
        await service.close()
    assert await db_pool.fetchval("SELECT expired_at IS NOT NULL FROM invitations")
    assert await db_pool.fetchval("SELECT version FROM invitations") == row.version + 1
