"""The construction-site pages through the real web app: a site manager registers a worker by
form (document number -> person key with the pepper; only masks shown and stored), imports a
CSV and sees each bad row (row, field, message) while the good rows go in, ends a
registration; every change moves the site's roster bundle version. Attendance and the muster
list show the known answers. Another site is 404 on every page and form, with nothing changed;
every form is CSRF-checked; bad parameters are 4xx."""

from __future__ import annotations

import datetime as dt
import re

import aiohttp
import asyncpg
import pytest

from suishen.central.bundle_service import read_body
from suishen.protocol.listbodies import roster_workers
from suishen.protocol.person import person_key
from suishen.protocol.vocabulary import Role
from tests.central.hubkit import register
from tests.central.web.conftest import WebClient, WebClientFactory
from tests.central.web.test_construction_queries import key_of, ric, scan

SITE = "build-a"
OTHER = "build-b"
SECRET_PEPPER = b"q" * 32
M = dt.timedelta(minutes=1)


@pytest.fixture
def web_pepper() -> bytes:
    """The web app holds a deployment pepper (conftest's web_server reads this)."""
    return SECRET_PEPPER


@pytest.fixture
async def sites(db_pool: asyncpg.Pool) -> None:
    async with db_pool.acquire() as con:
        await register(con, "gw-a", SITE, kind="construction")
        await register(con, "gw-b", OTHER, kind="construction")


async def version(pool: asyncpg.Pool) -> int:
    async with pool.acquire() as con:
        value: int = await con.fetchval("SELECT version FROM bundle_versions WHERE kind='roster'")
    return value


async def bundle(pool: asyncpg.Pool, site_id: str = SITE) -> set[str]:
    async with pool.acquire() as con:
        return {key for key, _ in roster_workers(await read_body(con, "roster", site_id))}


async def post(wc: WebClient, path: str, data: object, **headers: str) -> aiohttp.ClientResponse:
    return await wc.client.post(
        path, data=data, headers=wc.unsafe_headers(**headers), allow_redirects=False
    )


def add_form(wc: WebClient, n: int, **over: str) -> dict[str, str]:
    form = {"csrf_token": wc.csrf, "id_type": "RIC", "id_number": ric(n), "name": "张三明",
            "employer": "一建", "trade": "木工"}  # fmt: skip
    form.update(over)
    return form


def csv_upload(wc: WebClient, text: str, encoding: str = "utf-8") -> aiohttp.FormData:
    data = aiohttp.FormData()
    data.add_field("csrf_token", wc.csrf)
    data.add_field("file", text.encode(encoding), filename="roster.csv", content_type="text/csv")
    return data


async def test_roster_add_import_expire(
    web_client: WebClientFactory, db_pool: asyncpg.Pool, sites: None
) -> None:
    """Form add -> 303, the worker (masked) on the page and in the bundle, version +1; a bad
    number -> 400 with the field named and the number not echoed, nothing written; CSV import
    -> the error table names rows 3 and 4, the good row is in, version +1; expire -> 303, out of
    the bundle, version +1."""
    wc = await web_client(Role.SITE_MANAGER, [SITE])
    start = await version(db_pool)
    added = await post(wc, f"/construction/{SITE}/workers", add_form(wc, 1))
    assert (added.status, added.headers["Location"]) == (303, f"/construction/{SITE}?done=added")
    key1 = person_key(SECRET_PEPPER, "RIC", ric(1))
    assert await bundle(db_pool) == {key1} and await version(db_pool) == start + 1
    page = await (await wc.client.get(f"/construction/{SITE}")).text()
    assert "张*明" in page and "张三明" not in page and ric(1) not in page
    assert "310***********" + ric(1)[-4:] in page

    bad = ric(2)[:-1] + ("0" if ric(2)[-1] != "0" else "1")
    refused = await post(wc, f"/construction/{SITE}/workers", add_form(wc, 2, id_number=bad))
    text = await refused.text()
    assert refused.status == 400 and 'id="form-error"' in text and "id_number" in text
    assert bad not in text and await version(db_pool) == start + 1

    csv_text = (
        "id_number,name,employer,trade\n"
        f"{ric(3)},李四,二建,焊工\n"
        f"{bad},王五,二建,焊工\n"
        f"{ric(4)},,二建,焊工\n"
    )
    imported = await post(wc, f"/construction/{SITE}/import", csv_upload(wc, csv_text, "gb18030"))
    text = await imported.text()
    assert imported.status == 200, text
    errors = re.findall(r"<tr class=\"deny\"><td>(\d+)</td><td>(\w+)</td>", text)
    assert errors == [("3", "id_number"), ("4", "name")]
    key3 = person_key(SECRET_PEPPER, "RIC", ric(3))
    assert await bundle(db_pool) == {key1, key3} and await version(db_pool) == start + 2

    ended = await post(wc, f"/construction/{SITE}/expire", {"csrf_token": wc.csrf,
                                                            "person_key": key1})  # fmt: skip
    assert ended.status == 303
    assert await bundle(db_pool) == {key3} and await version(db_pool) == start + 3
    again = await post(wc, f"/construction/{SITE}/expire", {"csrf_token": wc.csrf,
                                                            "person_key": key1})  # fmt: skip
    assert again.status == 404
    async with db_pool.acquire() as con:
        actions = [r["action"] for r in await con.fetch("SELECT action FROM audit ORDER BY 1")]
    assert actions == ["roster_add", "roster_expire", "roster_import"]


async def test_other_site_is_not_found_on_every_route(
    web_client: WebClientFactory, db_pool: asyncpg.Pool, sites: None
) -> None:
    """A manager of build-a gets 404 for build-b's pages and for each form posted to it (with
    a valid CSRF token); build-b's roster and the bundle version do not move. An analyst reads
    build-b but may not change it (403); a tenant of build-a may not read its pages (403)."""
    async with db_pool.acquire() as con:
        await con.execute(
            "INSERT INTO workers (site_id, person_key, masked_name, employer, version) "
            "VALUES ($1, $2, 'X*', 'E', 1)",
            OTHER,
            key_of(9),
        )
    wc = await web_client(Role.SITE_MANAGER, [SITE])
    start = await version(db_pool)
    for tail in ("", "/attendance", "/muster", "/attendance?day=2026-01-01", "?expired=1"):
        assert (await wc.client.get(f"/construction/{OTHER}{tail}")).status == 404, tail
    assert (await post(wc, f"/construction/{OTHER}/workers", add_form(wc, 1))).status == 404
    upload = csv_upload(wc, f"id_number,name,employer\n{ric(1)},a,b\n")
    assert (await post(wc, f"/construction/{OTHER}/import", upload)).status == 404
    expire = {"csrf_token": wc.csrf, "person_key": key_of(9)}
    assert (await post(wc, f"/construction/{OTHER}/expire", expire)).status == 404
    assert await version(db_pool) == start and await bundle(db_pool, OTHER) == {key_of(9)}
    assert await bundle(db_pool, SITE) == set()

    analyst = await web_client(Role.ANALYST)
    assert (await analyst.client.get(f"/construction/{OTHER}")).status == 200
    expire = {"csrf_token": analyst.csrf, "person_key": key_of(9)}
    assert (await post(analyst, f"/construction/{OTHER}/expire", expire)).status == 403
    assert await bundle(db_pool, OTHER) == {key_of(9)}
    tenant = await web_client(Role.TENANT, [SITE])
    for tail in ("", "/attendance", "/muster"):
        assert (await tenant.client.get(f"/construction/{SITE}{tail}")).status == 403


async def test_csrf_on_every_form(
    web_client: WebClientFactory, db_pool: asyncpg.Pool, sites: None
) -> None:
    """Each of the three forms without its token, with a wrong one, or from another origin: 403
    and nothing written."""
    wc = await web_client(Role.SITE_MANAGER, [SITE])
    start = await version(db_pool)
    for tail, good in (
        ("/workers", add_form(wc, 1)),
        ("/expire", {"csrf_token": wc.csrf, "person_key": key_of(1)}),
        ("/import", {"csrf_token": wc.csrf, "file": f"id_number,name,employer\n{ric(1)},a,b\n"}),
    ):
        url = f"/construction/{SITE}{tail}"
        missing = {k: v for k, v in good.items() if k != "csrf_token"}
        wrong = {**good, "csrf_token": "0" * len(wc.csrf)}
        for data, headers in ((missing, wc.unsafe_headers()), (wrong, wc.unsafe_headers()),
                              (good, {"Origin": "http://evil.example"})):  # fmt: skip
            response = await wc.client.post(url, data=data, headers=headers, allow_redirects=False)
            assert response.status == 403, (tail, data, headers)
    assert await version(db_pool) == start
    async with db_pool.acquire() as con:
        assert await con.fetchval("SELECT count(*) FROM workers") == 0


async def test_attendance_and_muster_pages(
    web_client: WebClientFactory, db_pool: asyncpg.Pool, sites: None
) -> None:
    """Two workers came in today (one went out after 2 h), a stranger is inside: the attendance
    page shows 3 came in with 2:00 for the one who left; the muster list counts 2 inside, under
    their employer/trade and 'not on the roster'."""
    wc = await web_client(Role.SITE_MANAGER, [SITE])
    now = dt.datetime.now(dt.UTC)
    async with db_pool.acquire() as con:
        for n, employer in ((1, "一建"), (2, "二建")):
            await con.execute(
                "INSERT INTO workers (site_id, person_key, masked_name, employer, trade, version) "
                "VALUES ($1, $2, $3, $4, '木工', 1)",
                SITE, key_of(n), f"工*{n}", employer,
            )  # fmt: skip
        # Times within the last few minutes keep the test inside the site's local day unless it
        # runs within 10 minutes after midnight in Shanghai.
        start = now - 6 * M
        await scan(con, 1, start, 1, "in")
        await scan(con, 2, start + M, 2, "in")
        await scan(con, 3, start + 3 * M, 2, "out")
        await scan(con, 4, start + 2 * M, 7, "in")
    page = await wc.client.get(f"/construction/{SITE}/attendance")
    html = await page.text()
    assert page.status == 200, html
    assert re.search(r'id="present-count">3<', html)
    assert "<td>0:02</td>" in html and "W7*" in html
    muster = await (await wc.client.get(f"/construction/{SITE}/muster")).text()
    assert re.search(r'id="muster-count">2<', muster)
    assert "工*1" in muster and "工*2" not in muster and "W7*" in muster
    assert key_of(1)[:12] not in muster  # keys only for analysts and admins


async def test_bad_parameters_are_4xx(web_client: WebClientFactory, sites: None) -> None:
    """Bad or repeated day/hours, SQL metacharacters, an overlong site id, a non-file upload,
    JSON instead of a form: 4xx, never 500."""
    wc = await web_client(Role.SITE_MANAGER, [SITE])
    for path, status in (
        (f"/construction/{SITE}/attendance?day=2026-13-01", 400),
        (f"/construction/{SITE}/attendance?day=2026-01-01&day=2026-01-02", 400),
        (f"/construction/{SITE}/attendance?day=1'%20OR%201=1", 400),
        (f"/construction/{SITE}/muster?hours=abc", 400),
        (f"/construction/{SITE}/muster?hours=999", 400),
        ("/construction/x'%20OR%20'1'='1/muster", 404),
        ("/construction/" + "b" * 65, 400),
    ):
        assert (await wc.client.get(path)).status == status, path
    not_a_file = await post(wc, f"/construction/{SITE}/import", {"csrf_token": wc.csrf,
                                                                 "file": "x"})  # fmt: skip
    assert not_a_file.status == 400
    repeated = await post(wc, f"/construction/{SITE}/workers",
                          [*add_form(wc, 1).items(), ("name", "again")])  # fmt: skip
    assert repeated.status == 400
    bad_key = await post(wc, f"/construction/{SITE}/expire", {"csrf_token": wc.csrf,
                                                              "person_key": "'; --"})  # fmt: skip
    assert bad_key.status == 400
    headers = wc.unsafe_headers(**{"X-CSRF-Token": wc.csrf})
    as_json = await wc.client.post(
        f"/construction/{SITE}/workers", json={"name": "x"}, headers=headers
    )
    assert as_json.status == 400
