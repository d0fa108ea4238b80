"""The site pages (issue 10 items 2 and 6): dashboard, scan log, CSV export and live feed, each
scoped to the user's sites: a site manager of site A gets 404 and nothing of site B on every
page, export and stream; analysts and admins see every site; anonymous users are sent to the
login page; bad filters are a clear 400, never a 500."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from suishen.protocol.vocabulary import Role

from .conftest import WebClientFactory
from .sitedata import NAME_A, NAME_B, SITE_A, SITE_B, insert_scan, two_sites

SITE_ROUTES = ("/site/{}", "/site/{}/scans", "/site/{}/scans.csv", "/site/{}/feed")


@pytest.fixture
async def sites(db_pool: asyncpg.Pool) -> None:
    await two_sites(db_pool)


async def test_anonymous_is_sent_to_login_on_every_route(
    anon_client: TestClient, sites: None
) -> None:
    """Every site route redirects an anonymous browser to /login, naming the page."""
    for route in ("/site", *SITE_ROUTES):
        path = route.format(SITE_A)
        response = await anon_client.get(path, allow_redirects=False)
        assert response.status == 303, path
        assert response.headers["Location"].startswith("/login?next=")


async def test_site_manager_sees_only_their_site(web_client: WebClientFactory, sites: None) -> None:
    """A manager of site A: A's dashboard shows its people (masked) and capacity; every route
    of site B, and of a site that does not exist, is 404 with nothing of B in it."""
    wc = await web_client(Role.SITE_MANAGER, [SITE_A])
    picker = await wc.client.get("/site", allow_redirects=False)
    assert (picker.status, picker.headers["Location"]) == (303, f"/site/{SITE_A}")
    page = await wc.client.get(f"/site/{SITE_A}")
    text = await page.text()
    assert page.status == 200
    assert NAME_A in text and NAME_B not in text
    assert 'id="inside-count">2<' in text  # three in, one out
    assert "over-soft" in text  # 2 inside, soft capacity 2
    assert "<svg" in text and 'class="bar"' in text
    assert "<script>" not in text  # only the static live.js
    for route in SITE_ROUTES:
        for site_id in (SITE_B, "no-such-site", "x" * 300):
            response = await wc.client.get(route.format(site_id), allow_redirects=False)
            body = await response.text()
            assert response.status == 404, (route, site_id)
            assert NAME_B not in body and "310***" not in body


@pytest.mark.parametrize("role", [Role.ANALYST, Role.ADMIN])
async def test_analyst_and_admin_see_every_site(
    web_client: WebClientFactory, sites: None, role: Role
) -> None:
    """Analysts and admins have no site grants and still see every site's pages."""
    wc = await web_client(role)
    picker = await (await wc.client.get("/site")).text()
    assert f"/site/{SITE_A}" in picker and f"/site/{SITE_B}" in picker
    for site_id, name in ((SITE_A, NAME_A), (SITE_B, NAME_B)):
        for route in SITE_ROUTES[:3]:
            response = await wc.client.get(route.format(site_id))
            assert response.status == 200, route
            assert name in await response.text()


async def test_tenant_without_sites_sees_none(web_client: WebClientFactory, sites: None) -> None:
    """A tenant (scoped like a site manager) with no grant sees no site at all."""
    wc = await web_client(Role.TENANT)
    assert "尚未为您授权任何场所" in await (await wc.client.get("/site")).text()
    assert (await wc.client.get(f"/site/{SITE_A}")).status == 404


async def test_scan_log_filters(web_client: WebClientFactory, sites: None) -> None:
    """verdict, reason, lane and masked-number filters narrow the rows."""
    wc = await web_client(Role.SITE_MANAGER, [SITE_A])
    base = f"/site/{SITE_A}/scans"
    deny = await (await wc.client.get(base, params={"verdict": "deny"})).text()
    assert deny.count('<tr class="deny">') == 1 and '<tr class="allow">' not in deny
    red = await (await wc.client.get(base, params={"reason": "status_red"})).text()
    assert red.count('<tr class="deny">') == 1
    out = await (await wc.client.get(base, params={"lane": "lobby-out"})).text()
    assert out.count("<tr class=") == 1
    number = await (await wc.client.get(base, params={"number": "002X"})).text()
    assert number.count("<tr class=") == 5
    none = await (await wc.client.get(base, params={"number": "9999"})).text()
    assert "没有符合条件的记录" in none


BAD_PARAMS = [
    {"verdict": "allow' OR '1'='1"},
    {"reason": "x'; DROP TABLE scans; --"},
    {"since": "2020-01-01'; --"},
    {"until": "now()"},
    {"after": "'; SELECT 1; --"},
    {"after": "WyIyMDIwIiwxLDIsM10"},  # base64 of a JSON list that is no cursor
    {"lane": "a" * 65},
    {"number": "9" * 100},
    {"since": "2026-01-01T00:00", "until": "2025-01-01T00:00"},
    {"since": "2020-01-01T00:00", "until": "2026-01-01T00:00"},
]


async def test_bad_filters_are_400_and_metacharacters_are_data(
    web_client: WebClientFactory, sites: None, db_pool: asyncpg.Pool
) -> None:
    """Malformed, overlong, repeated or out-of-vocabulary filters are 400 on the page and the
    export; SQL metacharacters in free-text filters match nothing; scans are untouched."""
    wc = await web_client(Role.SITE_MANAGER, [SITE_A])
    for path in (f"/site/{SITE_A}/scans", f"/site/{SITE_A}/scans.csv"):
        for params in BAD_PARAMS:
            response = await wc.client.get(path, params=params)
            assert response.status == 400, (path, params)
        repeated = await wc.client.get(path + "?verdict=allow&verdict=deny")
        assert repeated.status == 400
        for text in ("' OR 1=1 --", "%'; DROP TABLE scans; --", "\\", "_%", "李*红"):
            for name in ("lane", "number"):
                response = await wc.client.get(path, params={name: text})
                assert response.status == 200, (path, name, text)
                body = await response.text()
                leak = NAME_B if path.endswith(".csv") else f"<td>{NAME_B}</td>"
                assert leak not in body
    assert await db_pool.fetchval("SELECT count(*) FROM scans") == 6


async def test_wrong_methods_and_content_types(web_client: WebClientFactory, sites: None) -> None:
    """POST/PUT to a page (with a valid session, token and Origin) is 405; never a 500."""
    wc = await web_client(Role.SITE_MANAGER, [SITE_A])
    for method in ("POST", "PUT", "DELETE"):
        response = await wc.client.request(
            method,
            f"/site/{SITE_A}/scans",
            data=b"\x00\xff{",
            headers=wc.unsafe_headers(**{"X-CSRF-Token": wc.csrf, "Content-Type": "text/xml"}),
        )
        assert response.status == 405, method


async def test_keyset_paging_covers_every_row_once(
    web_client: WebClientFactory, sites: None, db_pool: asyncpg.Pool
) -> None:
    """120 more scans: pages of 50 follow the 'Older' cursor; every row appears exactly once."""
    for seq in range(100, 220):
        await insert_scan(db_pool, seq, SITE_A, lane_id=f"lane-{seq}")
    wc = await web_client(Role.SITE_MANAGER, [SITE_A])
    url: str | None = f"/site/{SITE_A}/scans"
    seen: list[str] = []
    pages = 0
    while url is not None:
        text = await (await wc.client.get(url)).text()
        seen += [part.split("<")[0] for part in text.split("<td>lane-")[1:]]
        pages += 1
        marker = 'id="next-page" href="'
        url = text.split(marker)[1].split('"')[0].replace("&amp;", "&") if marker in text else None
    assert pages == 3
    assert sorted(seen) == sorted(str(n) for n in range(100, 220))


async def test_csv_export_is_masked_bom_and_scoped(
    web_client: WebClientFactory, sites: None, db_pool: asyncpg.Pool
) -> None:
    """The export is UTF-8 with BOM, Chinese headers, masked values only, formulas defused,
    only the site's rows; and it is audited."""
    await insert_scan(db_pool, 50, SITE_A, masked_name='=HYPERLINK("http://x")')
    wc = await web_client(Role.SITE_MANAGER, [SITE_A])
    response = await wc.client.get(f"/site/{SITE_A}/scans.csv")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/csv")
    raw = await response.read()
    assert raw.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert rows[0][0] == "时间"
    assert len(rows) == 1 + 6
    names = {row[7] for row in rows[1:]}
    assert NAME_A in names and NAME_B not in names
    assert '\'=HYPERLINK("http://x")' in names
    actions = await db_pool.fetch("SELECT actor, action, target FROM audit")
    assert [(a["actor"], a["action"]) for a in actions] == [(wc.username, "export")]
    assert json.loads(actions[0]["target"])["site_id"] == SITE_A


async def _read_event(response) -> dict:
    async with asyncio.timeout(5):
        data = None
        while True:
            line = (await response.content.readline()).decode()
            if line.startswith("data: "):
                data = json.loads(line[6:])
            elif line in ("\n", "\r\n") and data is not None:
                return data


async def test_live_feed_streams_only_the_sites_scans(
    web_client: WebClientFactory, sites: None, db_pool: asyncpg.Pool
) -> None:
    """A manager of A watching A's feed gets A's new scan within a second and never B's."""
    wc = await web_client(Role.SITE_MANAGER, [SITE_A])
    response = await wc.client.get(f"/site/{SITE_A}/feed")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    await asyncio.sleep(0.2)
    await insert_scan(db_pool, 300, SITE_B, masked_name="王*B")
    started = time.monotonic()
    await insert_scan(db_pool, 301, SITE_A, masked_name="赵*A", verdict="deny", reason="replay")
    event = await _read_event(response)
    assert time.monotonic() - started < 1.5
    assert event["who"] == "赵*A" and event["verdict"] == "拒绝" and event["reason"] == "重复使用"
    response.close()


async def test_shutdown_ends_open_streams_promptly(
    web_server: TestServer, web_client: WebClientFactory, sites: None
) -> None:
    """With a live stream open, stopping the web app ends it at once (not after a timeout)."""
    wc = await web_client(Role.ANALYST)
    response = await wc.client.get(f"/site/{SITE_A}/feed")
    assert response.status == 200
    started = time.monotonic()
    await web_server.close()
    assert time.monotonic() - started < 3
    response.close()
