"""Visitor invitations at the gate (issue 13, item 3, the gateway's part): at a building that
requires invitations an uninvited code is denied not_invited, an invited one opens only inside
its window and at its lanes, a registered person needs none. The invitations arrive in the
signed roster bundle, installed while the gateway runs; a real lane (pty scanner, Modbus)."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import pytest

from suishen.demo.simsite import LaneSpec
from suishen.gateway.lists import RosterEntry
from suishen.protocol.codes import Identity
from suishen.protocol.errors import BundleError
from suishen.protocol.listbodies import Invitation, roster_body, roster_invitations
from tests.integration.gateway_fixtures import cnid, ric, running_gateway

LANES = [LaneSpec(id="in-1"), LaneSpec(id="in-2")]
RULES = 'invitations = "deny"\n'


def person(year: int) -> Identity:
    return ric(cnid(dt.date(year, 1, 1)), dob=f"{year}-01-01")


async def test_invitations_decide_who_enters(tmp_path: Path) -> None:
    """Uninvited: not_invited. Invited for in-1 now: opens at in-1, not at in-2. Invited for a
    window that ended: not_invited. A registered worker: no invitation needed."""
    guest, late, stranger, staff = person(1980), person(1981), person(1982), person(1983)
    async with running_gateway(tmp_path, lanes=LANES, rules_toml=RULES) as gw:
        now = int(time.time())
        site = gw.service.config.site.id
        invitations = [
            (
                gw.key("RIC", guest.idn),
                Invitation(
                    site_id=site,
                    valid_from=now - 60,
                    valid_to=now + 3600,
                    lanes=frozenset({"in-1"}),
                ),
            ),
            (
                gw.key("RIC", late.idn),
                Invitation(site_id=site, valid_from=now - 7200, valid_to=now - 3600),
            ),
        ]
        workers = [(gw.key("RIC", staff.idn), RosterEntry(site_id=site))]
        data = gw.bundle("roster", roster_body(workers, invitations), version=1)
        assert gw.service.lists.install("roster", data) == 1

        assert (await gw.scan("in-1", gw.code(stranger))).reason == "not_invited"
        assert (await gw.scan("in-1", gw.code(late))).reason == "not_invited"
        assert (await gw.scan("in-2", gw.code(guest))).reason == "not_invited"
        entered = await gw.scan("in-1", gw.code(guest))
        assert (entered.verdict, entered.reason) == ("allow", None)
        staffed = await gw.scan("in-2", gw.code(staff))
        assert (staffed.verdict, staffed.reason) == ("allow", None)


@pytest.mark.parametrize(
    ("invitation", "problem"),
    [
        ({"site_id": "s", "valid_from": 10, "valid_to": 5}, "end after the start"),
        ({"site_id": "s", "valid_from": 10}, "required"),
        ({"site_id": "s", "valid_from": 1, "valid_to": 2, "lanes": "in-1"}, "lanes must be a list"),
        ({"person_key": "zz", "site_id": "s", "valid_from": 1, "valid_to": 2}, "64 hex"),
    ],
)
def test_a_malformed_invitation_refuses_the_bundle(invitation: dict, problem: str) -> None:
    """An invitation that ends before it starts (or is otherwise malformed) makes the whole
    roster bundle malformed: nothing half-applied, the last good roster stays."""
    body = roster_body([])
    body["invitations"] = [{"person_key": "ab" * 32, **invitation}]
    with pytest.raises(BundleError) as caught:
        roster_invitations(body)
    assert "invitations[0]" in str(caught.value) and problem in str(caught.value)
