"""Tenant pages (issue 13, item 3): a tenant invites a visitor by document number (CSRF form),
sees its invitations and its visitors' arrivals in Chinese and English, cancels; another tenant,
another site's user and an analyst see nothing of it (404 / 403); bad input is a 400 page
naming the field, nothing written, the number never echoed."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import aiohttp
import asyncpg
import pytest

from suishen.protocol.person import person_key
from suishen.protocol.vocabulary import Role
from tests.central.test_invitations import ric
from tests.central.web.conftest import WebClient, WebClientFactory

SITE, OTHER = "tower-a", "tower-b"
SECRET_PEPPER = b"t" * 32
SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def web_pepper() -> bytes:
    """The web app holds a deployment pepper (conftest's web_server reads this)."""
    return SECRET_PEPPER


async def post(wc: WebClient, path: str, data: dict[str, str]) -> aiohttp.ClientResponse:
    return await wc.client.post(path, data=data, headers=wc.unsafe_headers(), allow_redirects=False)


def local(delta: dt.timedelta) -> str:
    return (dt.datetime.now(SHANGHAI) + delta).strftime("%Y-%m-%dT%H:%M")


def invite_form(wc: WebClient, n: int, **over: str) -> dict[str, str]:
    form = {
        "csrf_token": wc.csrf, "id_type": "RIC", "id_number": ric(n), "name": "王小明",
        "valid_from": local(-dt.timedelta(hours=1)), "valid_until": local(dt.timedelta(hours=3)),
        "lanes": "lobby-in", "zones": "",
    }  # fmt: skip
    form.update(over)
    return form


async def count(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM invitations"))


async def test_a_tenant_invites_sees_arrivals_and_cancels(
    web_client: WebClientFactory, db_pool: asyncpg.Pool
) -> None:
    """Invite (303, stored under HMAC(pepper) with the site-local window), listed in zh and en
    with the masked name and never the number; an arrival scan shows on the arrivals page;
    cancel (303) takes it off the list and audits it."""
    acme = await web_client(Role.TENANT, [SITE])
    response = await acme.client.get("/visitors", allow_redirects=False)
    assert (response.status, response.headers["Location"]) == (303, f"/visitors/{SITE}")
    response = await post(acme, f"/visitors/{SITE}/invite", invite_form(acme, 1))
    assert response.status == 303, await response.text()
    row = await db_pool.fetchrow("SELECT * FROM invitations")
    assert row["person_key"] == person_key(SECRET_PEPPER, "RIC", ric(1))
    assert abs(
        row["valid_from"] - (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
    ) < dt.timedelta(minutes=2)
    page = await (await acme.client.get(f"/visitors/{SITE}?done=invited")).text()
    assert "王*明" in page and "lobby-in" in page and "已邀请访客" in page
    assert ric(1) not in page and "王小明" not in page
    acme.client.session.cookie_jar.update_cookies({"lang": "en"})
    page = await (await acme.client.get(f"/visitors/{SITE}")).text()
    assert "Invite a visitor" in page and "Cancel invitation" in page

    await db_pool.execute(
        "INSERT INTO scans (gateway_id, seq, ts, site_id, lane_id, direction, format, verdict, "
        "person_key, masked_name) VALUES ('gw', 1, now() - interval '5 minutes', $1, "
        "'lobby-in', 'in', 'SSC1', 'allow', $2, '王*明')",
        SITE,
        row["person_key"],
    )
    page = await (await acme.client.get(f"/visitors/{SITE}/arrivals")).text()
    assert "王*明" in page and "lobby-in" in page

    cancel = {"csrf_token": acme.csrf, "invitation_id": str(row["invitation_id"])}
    response = await post(acme, f"/visitors/{SITE}/cancel", cancel)
    assert response.status == 303
    page = await (await acme.client.get(f"/visitors/{SITE}")).text()
    assert f'id="invitation-{row["invitation_id"]}"' not in page
    actions = await db_pool.fetch("SELECT action FROM audit WHERE actor = $1", acme.username)
    assert sorted(a["action"] for a in actions) == ["invitation_add", "invitation_cancel"]


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"valid_until": local(-dt.timedelta(hours=2))}, "valid_until"),  # before the start
        ({"valid_until": local(dt.timedelta(days=8))}, "valid_until"),  # longer than 7 days
        ({"valid_from": "soon"}, "valid_from"),
        ({"id_number": ric(2)[:-1] + ("0" if ric(2)[-1] != "0" else "1")}, "id_number"),
        ({"id_type": "PP", "id_number": "E1234567"}, "nationality"),
        ({"lanes": "lobby;in"}, "lanes"),
    ],
)
async def test_bad_input_is_a_400_naming_the_field(
    web_client: WebClientFactory, db_pool: asyncpg.Pool, over: dict[str, str], field: str
) -> None:
    """The form comes back (400) with the field named; nothing is written; the number typed
    is not in the page."""
    acme = await web_client(Role.TENANT, [SITE])
    form = invite_form(acme, 2, **over)
    response = await post(acme, f"/visitors/{SITE}/invite", form)
    page = await response.text()
    assert response.status == 400
    assert 'id="form-error"' in page and field in page
    assert form["id_number"] not in page
    assert await count(db_pool) == 0


async def test_other_tenants_sites_and_roles_see_nothing(
    web_client: WebClientFactory, db_pool: asyncpg.Pool
) -> None:
    """Another tenant of the site: not listed, cancel 404; a tenant of another site: 404 for
    the site; an analyst: 403; no CSRF token: 403; the site manager sees and may cancel it."""
    acme = await web_client(Role.TENANT, [SITE])
    assert (await post(acme, f"/visitors/{SITE}/invite", invite_form(acme, 3))).status == 303
    invitation = str(await db_pool.fetchval("SELECT invitation_id FROM invitations"))
    globex = await web_client(Role.TENANT, [SITE])
    page = await (await globex.client.get(f"/visitors/{SITE}")).text()
    assert f'id="invitation-{invitation}"' not in page
    cancel = {"invitation_id": invitation}
    response = await post(globex, f"/visitors/{SITE}/cancel", {**cancel, "csrf_token": globex.csrf})
    assert response.status == 404
    elsewhere = await web_client(Role.TENANT, [OTHER])
    assert (await elsewhere.client.get(f"/visitors/{SITE}")).status == 404
    assert (await elsewhere.client.get(f"/visitors/{SITE}/arrivals")).status == 404
    response = await post(
        elsewhere, f"/visitors/{SITE}/cancel", {**cancel, "csrf_token": elsewhere.csrf}
    )
    assert response.status == 404
    analyst = await web_client(Role.ANALYST)
    assert (await analyst.client.get(f"/visitors/{SITE}")).status == 403
    assert (await post(acme, f"/visitors/{SITE}/cancel", cancel)).status == 403  # no CSRF
    manager = await web_client(Role.SITE_MANAGER, [SITE])
    page = await (await manager.client.get(f"/visitors/{SITE}")).text()
    assert f'id="invitation-{invitation}"' in page and acme.username in page
    response = await post(
        manager, f"/visitors/{SITE}/cancel", {**cancel, "csrf_token": manager.csrf}
    )
    assert response.status == 303
    assert await db_pool.fetchval("SELECT cancelled_by FROM invitations") == manager.username
