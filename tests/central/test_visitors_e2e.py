"""Visitor invitations end to end (issue 13, item 3): the hub invites by document number, its
bundle service signs the site's roster, a running gateway (real lanes: pty scanner, Modbus
gate) installs it; at a building that requires invitations an uninvited code is denied
not_invited and the invited one opens only inside its window; a cancel reaches it the same way."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import asyncpg

from suishen.central.bundle_service import BundleService
from suishen.central.store import invitations as inv
from suishen.central.store import users
from suishen.demo.simsite import LaneSpec
from suishen.protocol.vocabulary import Role
from tests.central.web.conftest import TEST_HASHER
from tests.integration.gateway_fixtures import cnid, ric, running_gateway

LANES = [LaneSpec(id="in-1"), LaneSpec(id="in-2")]


async def test_a_hub_invitation_opens_the_gate_only_in_its_window(
    tmp_path: Path, db_pool: asyncpg.Pool
) -> None:
    """Hub: a tenant invites one visitor now (lane in-1) and another from tomorrow; the signed
    roster goes to the gateway.  Gateway: a stranger and the visitor of tomorrow are denied
    not_invited, the invited one opens at in-1 (not at in-2); after a cancel, the next roster
    bundle denies them again."""
    guest = ric(cnid(dt.date(1980, 1, 1)), dob="1980-01-01")
    later = ric(cnid(dt.date(1981, 1, 1)), dob="1981-01-01")
    stranger = ric(cnid(dt.date(1982, 1, 1)), dob="1982-01-01")
    async with running_gateway(tmp_path, lanes=LANES, rules_toml='invitations = "deny"\n') as gw:
        site = gw.service.config.site.id
        pepper = gw.service.config.privacy.read_pepper(gw.site.environ)
        assert gw.site.bundle_key is not None
        service = BundleService(db_pool, gw.site.bundle_key)
        now = dt.datetime.now(dt.UTC)
        async with db_pool.acquire() as con:
            await con.execute("INSERT INTO sites (site_id, kind) VALUES ($1, 'building')", site)
            await users.add_user(
                con, "acme", role=Role.TENANT, password="a long password", hasher=TEST_HASHER
            )
            await users.grant_site(con, "acme", site)
            invited = await inv.invite_by_document(
                con, site, as_user="acme", idt="RIC", idn=guest.idn, lanes=["in-1"],
                valid_from=now - dt.timedelta(minutes=5), valid_until=now + dt.timedelta(hours=2),
                pepper=pepper, name="王小明",
            )  # fmt: skip
            await inv.invite_by_document(
                con, site, as_user="acme", idt="RIC", idn=later.idn,
                valid_from=now + dt.timedelta(days=1),
                valid_until=now + dt.timedelta(days=1, hours=8),
                pepper=pepper,
            )  # fmt: skip
        assert invited.person_key == gw.key("RIC", guest.idn)
        bundle = await service.get("roster", site)
        assert bundle is not None
        assert gw.service.lists.install("roster", bundle.data) == bundle.version

        assert (await gw.scan("in-1", gw.code(stranger))).reason == "not_invited"
        assert (await gw.scan("in-1", gw.code(later))).reason == "not_invited"
        assert (await gw.scan("in-2", gw.code(guest))).reason == "not_invited"
        entered = await gw.scan("in-1", gw.code(guest))
        assert (entered.verdict, entered.reason) == ("allow", None)

        async with db_pool.acquire() as con:
            acme = await inv.named_inviter(con, "acme")
            await inv.cancel(con, acme, invited.invitation_id)
        await service.refresh()
        newer = await service.get("roster", site)
        assert newer is not None and newer.version > bundle.version
        assert gw.service.lists.install("roster", newer.data) == newer.version
        assert (await gw.scan("in-1", gw.code(guest))).reason == "not_invited"
