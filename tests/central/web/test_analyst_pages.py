"""The analyst pages through the real web app on a small city whose answers are known by
construction: the trace page ranks the one contact (60 minutes of overlap) and links the CSV
export with the same parameters; a document traced by POST becomes its person key (audited,
the number never in a URL); the crowd page shows the peak and the soft-capacity breaches as an
inline SVG; the watchlist page counts the hits. Site managers and tenants get 403 on every
route; bad parameters are 400."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import asyncpg
import pytest

from suishen.central.store import audit
from suishen.protocol.person import person_key
from suishen.protocol.vocabulary import Role
from tests.central.queries.citykit import City, key
from tests.central.queries.test_watchlist_hits import alert
from tests.central.web.conftest import WebClientFactory
from tests.central.web.test_construction_queries import ric

SECRET_PEPPER = b"r" * 32
ROUTES = ("/analyst", "/analyst/trace", "/analyst/crowd", "/analyst/watchlist", "/analyst/audit")


@pytest.fixture
def web_pepper() -> bytes:
    """The web app holds a deployment pepper (conftest's web_server reads this)."""
    return SECRET_PEPPER


@pytest.fixture
async def city(db_pool: asyncpg.Pool) -> None:
    """Venue A (soft capacity 1, hard 3): idx 1h-3h, c1 2h-4h (60 min with idx), c2 2.5h-2.6h
    (6 min: under the 15-minute margin); venue B: c3 1h-3h (another site). Three watchlist hits
    at A, one at B."""
    async with db_pool.acquire() as con:
        town = City(con)
        await town.site("A", capacity_soft=1, capacity_hard=3)
        await town.site("B")
        await town.visit("A", key("idx"), 1, 2)
        await town.visit("A", key("c1"), 2, 2)
        await town.visit("A", key("c2"), 2.5, 0.1)
        await town.visit("B", key("c3"), 1, 2)
        await town.derive()
        for seq, site in ((1, "A"), (2, "A"), (3, "A"), (4, "B")):
            await alert(con, seq, site, 1 + seq)


async def test_trace_page_ranks_contacts_and_links_the_export(
    web_client: WebClientFactory, city: None
) -> None:
    """One contact (c1, 60 min), not c2 (under the margin) nor c3 (another site); the CSV link
    carries the same parameters."""
    wc = await web_client(Role.ANALYST)
    page = await wc.client.get(f"/analyst/trace?person_key={key('idx')}&days=7")
    html = await page.text()
    assert page.status == 200, html
    assert re.findall(r'data-key="([0-9a-f]{64})"', html) == [key("c1")]
    assert "<td>60</td>" in html and "张*明" in html
    link = re.search(r'href="([^"]+)" id="csv-export"', html)
    assert link is not None
    url = urlsplit(link.group(1).replace("&amp;", "&"))
    assert url.path == "/api/v1/trace.csv"
    assert parse_qs(url.query) == {"person_key": [key("idx")], "days": ["7"]}
    second = await (await wc.client.get(
        f"/analyst/trace?person_key={key('idx')}&days=7&margin_minutes=5&second_degree=1"
    )).text()  # fmt: skip
    assert set(re.findall(r'data-key="([0-9a-f]{64})"', second)) == {key("c1"), key("c2")}
    empty = await wc.client.get("/analyst/trace")
    assert empty.status == 200 and "data-key" not in await empty.text()


async def test_trace_by_document_is_audited_and_keeps_the_number_out_of_urls(
    web_client: WebClientFactory, db_pool: asyncpg.Pool, city: None
) -> None:
    """POST a resident ID: 303 to the trace of its person key (HMAC with the pepper); one audit
    row 'person_key' by the analyst; the number is in no URL. Without the CSRF token: 403."""
    wc = await web_client(Role.ANALYST)
    form = {"csrf_token": wc.csrf, "document_type": "RIC", "document_number": ric(5), "days": "7"}
    response = await wc.client.post(
        "/analyst/trace", data=form, headers=wc.unsafe_headers(), allow_redirects=False
    )
    assert response.status == 303, await response.text()
    location = response.headers["Location"]
    assert ric(5) not in location
    assert parse_qs(urlsplit(location).query) == {
        "person_key": [person_key(SECRET_PEPPER, "RIC", ric(5))], "days": ["7"],
    }  # fmt: skip
    async with db_pool.acquire() as con:
        rows = await con.fetch("SELECT actor, action, person_key FROM audit")
    assert [(r["actor"], r["action"]) for r in rows] == [(wc.username, "person_key")]
    assert ric(5) not in str([dict(r) for r in rows])
    forged = await wc.client.post(
        "/analyst/trace", data={**form, "csrf_token": "x"}, headers=wc.unsafe_headers()
    )
    assert forged.status == 403
    bad = await wc.client.post(
        "/analyst/trace", data={**form, "document_type": "XX"}, headers=wc.unsafe_headers(),
        allow_redirects=False,
    )  # fmt: skip
    assert bad.status == 400


async def test_crowd_and_watchlist_pages(web_client: WebClientFactory, city: None) -> None:
    """Hourly buckets at A: 1h-2h idx (1), 2h-3h idx + c1 + c2 (peak 3), 3h-4h c1 (1). So the
    peak is 3, one bucket over the soft capacity of 1, none over the hard capacity of 3 (3 is
    not over 3); the SVG has one bar per hourly bucket of the 4 days. Hits: 3 at A, 4 in all."""
    wc = await web_client(Role.ADMIN)
    page = await wc.client.get("/analyst/crowd?site_id=A&days=4&bucket_minutes=60")
    html = await page.text()
    assert page.status == 200, html
    assert re.search(r'id="peak">3<', html)
    assert re.search(r'id="soft-breaches">1<', html) and re.search(r'id="hard-breaches">0<', html)
    assert html.count('<rect class="bar') == 4 * 24 and "<svg" in html
    assert html.count('<rect class="bar-over-soft" fill=') == 1
    assert re.search(r'id="inside-now">0<', html)
    hits = await (await wc.client.get("/analyst/watchlist?days=7")).text()
    assert re.search(r'id="hit-count">4<', hits)
    only_a = await (await wc.client.get("/analyst/watchlist?days=7&site_id=A")).text()
    assert re.search(r'id="hit-count">3<', only_a)


async def test_site_managers_and_tenants_are_refused(
    web_client: WebClientFactory, city: None
) -> None:
    """403 on every analyst route, GET and the POST, for a site manager (of A) and a tenant."""
    for role in (Role.SITE_MANAGER, Role.TENANT):
        wc = await web_client(role, ["A"])
        for path in ROUTES:
            assert (await wc.client.get(path, allow_redirects=False)).status == 403, (role, path)
        assert (await wc.client.get(f"/analyst/trace?person_key={key('idx')}")).status == 403
        assert (await wc.client.get("/analyst/crowd?site_id=A")).status == 403
        posted = await wc.client.post(
            "/analyst/trace",
            data={"csrf_token": wc.csrf, "document_type": "RIC", "document_number": ric(5)},
            headers=wc.unsafe_headers(),
            allow_redirects=False,
        )
        assert posted.status == 403, role


async def test_bad_parameters_are_400(web_client: WebClientFactory, city: None) -> None:
    """Malformed keys, out-of-range numbers, repeated or overlong parameters, SQL
    metacharacters: 400 (or 404 for a site that is not one); never 500."""
    wc = await web_client(Role.ANALYST)
    idx = key("idx")
    for path, status in (
        ("/analyst/trace?person_key=abc", 400),
        ("/analyst/trace?person_key=' OR 1=1 --", 400),
        (f"/analyst/trace?person_key={idx}&days=99", 400),
        (f"/analyst/trace?person_key={idx}&margin_minutes=-1", 400),
        (f"/analyst/trace?person_key={idx}&days=x", 400),
        (f"/analyst/trace?person_key={idx}&person_key={idx}", 400),
        ("/analyst/trace?second_degree=1", 400),
        ("/analyst/trace?person_key=" + "a" * 5000, 400),
        ("/analyst/crowd?site_id=A&district=x", 400),
        ("/analyst/crowd?site_id=A&days=0", 400),
        ("/analyst/crowd?site_id=A&bucket_minutes=0", 400),
        ("/analyst/crowd?site_id=x'%3BDROP%20TABLE%20sites%3B--", 404),
        ("/analyst/watchlist?days=100", 400),
        ("/analyst/watchlist?level=x&level=y", 400),
    ):
        response = await wc.client.get(path)
        assert response.status == status, (path, response.status, await response.text())


async def test_audit_trail_page_is_for_admins(
    web_client: WebClientFactory, db_pool: asyncpg.Pool, city: None
) -> None:
    """Admins see the trail (newest first, filtered by action) where the hub has the analyst
    branch's trail function, else a link to GET /api/v1/audit; analysts get 403."""
    async with db_pool.acquire() as con:
        await audit.record(con, "ana", "export", what="trace.csv")
        await audit.record(con, "ana", "person_key", person_key=key("idx"))
    admin = await web_client(Role.ADMIN)
    page = await admin.client.get("/analyst/audit?action=export")
    html = await page.text()
    assert page.status == 200, html
    if hasattr(audit, "trail"):
        assert len(re.findall(r'class="audit-row"', html)) == 1 and "trace.csv" in html
        assert (await admin.client.get("/analyst/audit?before_id=x")).status == 400
    else:
        assert 'id="audit-api"' in html and "/api/v1/audit" in html
    analyst = await web_client(Role.ANALYST)
    assert (await analyst.client.get("/analyst/audit")).status == 403
