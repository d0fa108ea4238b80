"""The hotel pages through the real web app (aiohttp test client, embedded PostgreSQL): a site
manager sees their hotel's guests by room, the minors flag and the foreign-guest deadlines with
masked names only, and marks a stay reported (CSRF-checked, audited); another hotel is 404 on
every route and nothing changes; analysts read but may not act; bad parameters are 4xx."""

from __future__ import annotations

import ast
import datetime as dt
import re
from pathlib import Path

import asyncpg
import pytest

from suishen.central.queries.hotel import StayKey
from suishen.central.web import views
from suishen.protocol.vocabulary import Role
from tests.central.hubkit import person, register
from tests.central.web.conftest import WebClient, WebClientFactory
from tests.central.web.test_hotel_queries import ensure_days, stay

HOTEL = "hotel-a"
OTHER = "hotel-b"
H = dt.timedelta(hours=1)
M = dt.timedelta(minutes=5)


@pytest.fixture
async def hotels(db_pool: asyncpg.Pool) -> dict[str, StayKey]:
    """Two hotels; at hotel-a an adult and an unaccompanied minor in house, an overdue foreign
    guest; at hotel-b one foreign guest due."""
    now = dt.datetime.now(dt.UTC)
    async with db_pool.acquire() as con:
        await ensure_days(con, now - 25 * H)
        await register(con, f"gw-{HOTEL}", HOTEL, kind="hotel")
        await register(con, f"gw-{OTHER}", OTHER, kind="hotel")
        return {
            "adult": await stay(con, 1, now - 3 * H, room="101", name="张*明"),
            "minor": await stay(con, 2, now - 3 * H, room="102", minor=True, name="李*"),
            "foreign": await stay(
                con,
                3,
                now - 25 * H + dt.timedelta(minutes=5),
                room="103",
                nationality="GBR",
                name="S****",
            ),
            "other": await stay(con, 4, now - 2 * H, site_id=OTHER, nationality="USA", name="J***"),
        }


def count(html: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}">([^<]*)<', html)
    assert match, element_id
    return match.group(1)


async def report(wc: WebClient, site: str, token: str, **headers: str):  # type: ignore[no-untyped-def]
    return await wc.client.post(
        f"/hotel/{site}/reported",
        data={"csrf_token": wc.csrf, "stay": token},
        headers=wc.unsafe_headers(**headers),
        allow_redirects=False,
    )


async def reported_count(pool: asyncpg.Pool) -> int:
    async with pool.acquire() as con:
        value: int = await con.fetchval("SELECT count(*) FROM stays WHERE reported_at IS NOT NULL")
    return value


async def test_site_manager_runs_their_hotel(
    web_client: WebClientFactory, db_pool: asyncpg.Pool, hotels: dict[str, StayKey]
) -> None:
    """The page shows 3 in house (the foreign guest is in house too), 1 minor flagged, 1 overdue,
    masked names only; the list page goes straight to the one hotel; 'Mark reported' sets
    reported_at and writes an audit row with the manager's name."""
    wc = await web_client(Role.SITE_MANAGER, [HOTEL])
    listing = await wc.client.get("/hotel", allow_redirects=False)
    assert (listing.status, listing.headers["Location"]) == (303, f"/hotel/{HOTEL}")
    page = await wc.client.get(f"/hotel/{HOTEL}")
    html = await page.text()
    assert page.status == 200, html
    assert (count(html, "in-house-count"), count(html, "minor-count")) == ("3", "1")
    assert count(html, "overdue-count") == "1"
    assert "张*明" in html and "李*" in html and "S****" in html and "J***" not in html
    assert hotels["foreign"].token in html and hotels["other"].token not in html
    assert person(1)[:12] not in html  # no person keys for site managers
    assert 'name="csrf_token"' in html

    done = await report(wc, HOTEL, hotels["foreign"].token)
    assert done.status == 303 and done.headers["Location"].endswith("?done=reported#foreign")
    assert await reported_count(db_pool) == 1
    async with db_pool.acquire() as con:
        audit = await con.fetch("SELECT actor, action FROM audit WHERE action = 'stay_reported'")
    assert [(a["actor"], a["action"]) for a in audit] == [(wc.username, "stay_reported")]
    after = await (await wc.client.get(f"/hotel/{HOTEL}?done=reported")).text()
    assert count(after, "overdue-count") == "0" and 'data-status="reported_late"' in after
    again = await report(wc, HOTEL, hotels["foreign"].token)
    assert again.headers["Location"].endswith("?done=already#foreign")


async def test_other_hotel_is_not_found_everywhere(
    web_client: WebClientFactory, db_pool: asyncpg.Pool, hotels: dict[str, StayKey]
) -> None:
    """A manager of hotel-a gets 404 for hotel-b's page and its action (with hotel-b's real
    stay, or hotel-a's stay under hotel-b's URL), like an unknown hotel; nothing is written. A
    manager of no hotel sees an empty list."""
    wc = await web_client(Role.SITE_MANAGER, [HOTEL])
    for path in (f"/hotel/{OTHER}", "/hotel/nope", f"/hotel/{OTHER}?days=3"):
        assert (await wc.client.get(path)).status == 404, path
    assert (await report(wc, OTHER, hotels["other"].token)).status == 404
    assert (await report(wc, OTHER, hotels["foreign"].token)).status == 404
    assert (await report(wc, HOTEL, hotels["other"].token)).status == 404
    assert await reported_count(db_pool) == 0
    nobody = await web_client(Role.SITE_MANAGER, ["some-building"])
    listing = await nobody.client.get("/hotel")
    assert listing.status == 200 and "/hotel/hotel-a" not in await listing.text()
    assert (await nobody.client.get(f"/hotel/{HOTEL}")).status == 404


async def test_roles(
    web_client: WebClientFactory, db_pool: asyncpg.Pool, hotels: dict[str, StayKey]
) -> None:
    """An analyst reads every hotel (and sees key prefixes) but may not mark a stay reported
    (403); an admin may; a tenant gets 403 on the pages."""
    analyst = await web_client(Role.ANALYST)
    listing = await (await analyst.client.get("/hotel")).text()
    assert "/hotel/hotel-a" in listing and "/hotel/hotel-b" in listing
    page = await analyst.client.get(f"/hotel/{OTHER}")
    html = await page.text()
    assert page.status == 200 and person(4)[:12] in html
    assert "/reported" not in html  # no action form for an analyst
    assert (await report(analyst, OTHER, hotels["other"].token)).status == 403
    assert await reported_count(db_pool) == 0
    admin = await web_client(Role.ADMIN)
    assert (await report(admin, OTHER, hotels["other"].token)).status == 303
    assert await reported_count(db_pool) == 1
    tenant = await web_client(Role.TENANT, [HOTEL])
    assert (await tenant.client.get(f"/hotel/{HOTEL}")).status == 403


async def test_csrf_and_origin_on_the_reported_action(
    web_client: WebClientFactory, db_pool: asyncpg.Pool, hotels: dict[str, StayKey]
) -> None:
    """No token, a wrong token, two tokens, another Origin, no Origin: 403 and nothing written."""
    wc = await web_client(Role.SITE_MANAGER, [HOTEL])
    url = f"/hotel/{HOTEL}/reported"
    token = hotels["foreign"].token
    attempts = [
        ({"stay": token}, wc.unsafe_headers()),
        ({"stay": token, "csrf_token": "x" * len(wc.csrf)}, wc.unsafe_headers()),
        ([("stay", token), ("csrf_token", wc.csrf), ("csrf_token", wc.csrf)], wc.unsafe_headers()),
        ({"stay": token, "csrf_token": wc.csrf}, {"Origin": "http://evil.example"}),
        ({"stay": token, "csrf_token": wc.csrf}, {}),
    ]
    for data, headers in attempts:
        response = await wc.client.post(url, data=data, headers=headers, allow_redirects=False)
        assert response.status == 403, (data, headers)
    assert await reported_count(db_pool) == 0


async def test_bad_parameters_are_4xx(
    web_client: WebClientFactory, db_pool: asyncpg.Pool, hotels: dict[str, StayKey]
) -> None:
    """SQL metacharacters in the site id: 404 (not a site); an overlong site id, a bad or
    repeated `days`, a forged or repeated stay token, JSON instead of a form: 400; no 500."""
    wc = await web_client(Role.SITE_MANAGER, [HOTEL])
    for path, status in (
        ("/hotel/x'%20OR%20'1'='1", 404),
        ("/hotel/hotel-a';DROP%20TABLE%20stays;--", 404),
        ("/hotel/" + "a" * 65, 400),
        (f"/hotel/{HOTEL}?days=abc", 400),
        (f"/hotel/{HOTEL}?days=1&days=2", 400),
        (f"/hotel/{HOTEL}?days=0", 400),
        (f"/hotel/{HOTEL}?days=" + "9" * 300, 400),
    ):
        assert (await wc.client.get(path)).status == status, path
    for token in ("", "'; DROP TABLE stays; --", "gw|1|" + "9" * 40, "x" * 5000):
        assert (await report(wc, HOTEL, token)).status == 400, token
    repeated = await wc.client.post(
        f"/hotel/{HOTEL}/reported",
        data=[("csrf_token", wc.csrf), ("stay", hotels["foreign"].token), ("stay", "x")],
        headers=wc.unsafe_headers(),
        allow_redirects=False,
    )
    assert repeated.status == 400
    as_json = await wc.client.post(
        f"/hotel/{HOTEL}/reported",
        json={"stay": hotels["foreign"].token},
        headers=wc.unsafe_headers(**{"X-CSRF-Token": wc.csrf}),
        allow_redirects=False,
    )
    assert as_json.status == 400
    assert await reported_count(db_pool) == 0
    async with db_pool.acquire() as con:
        assert await con.fetchval("SELECT count(*) FROM stays") == 4


async def test_a_bad_site_timezone_shows_utc_instead_of_failing(
    web_client: WebClientFactory, db_pool: asyncpg.Pool, hotels: dict[str, StayKey]
) -> None:
    """A sites.timezone that names no zone (or a path) is read as UTC: the page still answers."""
    wc = await web_client(Role.SITE_MANAGER, [HOTEL])
    for name in ("Not/AZone", "../../etc/passwd"):
        async with db_pool.acquire() as con:
            await con.execute("UPDATE sites SET timezone = $1 WHERE site_id = $2", name, HOTEL)
        page = await wc.client.get(f"/hotel/{HOTEL}")
        assert page.status == 200, name
        assert count(await page.text(), "in-house-count") == "3"


SQL = re.compile(r"\b(SELECT\s.+\sFROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM)\b", re.S)
VIEWS = Path(views.__file__).parent


@pytest.mark.parametrize("name", ["hotel", "construction", "analyst"])
def test_site_page_views_hold_no_sql(name: str) -> None:
    """The hotel, construction and analyst views (and their parameter helpers) call queries/ and
    store/; no SQL text of their own."""
    for path in (VIEWS / f"{name}.py", VIEWS.parent / "pageparams.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert not SQL.search(node.value), f"{path.name}:{node.lineno} holds SQL"


async def test_room_action(
    web_client: WebClientFactory, db_pool: asyncpg.Pool, hotels: dict[str, StayKey]
) -> None:
    """Putting the minor in the adult's room 101 clears the minor flag (an adult in the same
    room); audited. Another hotel's stay, a missing token, an overlong room: 404, 403, 400, and
    the rooms stay as they were."""
    wc = await web_client(Role.SITE_MANAGER, [HOTEL])

    async def set_room(site: str, token: str, room: str, **data: str):  # type: ignore[no-untyped-def]
        return await wc.client.post(
            f"/hotel/{site}/room",
            data={"csrf_token": wc.csrf, "stay": token, "room": room, **data},
            headers=wc.unsafe_headers(),
            allow_redirects=False,
        )

    done = await set_room(HOTEL, hotels["minor"].token, " 101 ")
    assert done.status == 303 and done.headers["Location"].endswith("?done=room#rooms")
    page = await (await wc.client.get(f"/hotel/{HOTEL}")).text()
    assert count(page, "minor-count") == "0"
    assert (await set_room(OTHER, hotels["other"].token, "1")).status == 404
    assert (await set_room(HOTEL, hotels["other"].token, "1")).status == 404
    assert (await set_room(HOTEL, hotels["adult"].token, "9" * 17)).status == 400
    assert (await set_room(HOTEL, hotels["adult"].token, "1", csrf_token="x")).status == 403
    async with db_pool.acquire() as con:
        rooms = await con.fetch("SELECT checkin_seq, room FROM stays ORDER BY checkin_seq")
        audited = await con.fetchval("SELECT count(*) FROM audit WHERE action = 'stay_room'")
    assert [(r["checkin_seq"], r["room"]) for r in rooms] == [
        (1, "101"), (2, "101"), (3, "103"), (4, None),
    ]  # fmt: skip
    assert audited == 1
