"""The analyst report pages (issue 11): the anomalies, hotel-check and construction queries as
pages, giving the answer the query function gives on constructed data; analysts and admins only;
parameters decoded as the API decodes them."""

from __future__ import annotations

import asyncpg
import pytest

from suishen.central.queries.anomalies import anomalies
from suishen.central.scope import Scope
from suishen.protocol.vocabulary import Role
from tests.central.queries.citykit import key
from tests.central.queries.test_anomalies import PARAMS, build

QUERY = {
    "since": PARAMS.since.isoformat(),
    "until": PARAMS.until.isoformat(),
    "max_speed_kmh": "150",
    "burst_count": "3",
    "burst_minutes": "5",
}


async def test_the_anomalies_page_gives_the_querys_answer(
    db_pool: asyncpg.Pool, web_client
) -> None:
    """The city of tests/central/queries/test_anomalies.py: the page lists the two impossible
    journeys (person p1 from A to B, code c1 from A to F) and the two bursts, as the query
    function answers them."""
    async with db_pool.acquire() as con:
        await build(con)
        expected = await anomalies(con, Scope.everywhere(), PARAMS)
    analyst = await web_client(Role.ANALYST)
    answer = await analyst.client.get("/analyst/report/anomalies", params=QUERY)
    assert answer.status == 200
    page = await answer.text()
    assert "travel (2)" in page and f"bursts ({len(expected.bursts)})" in page
    assert key("p1") in page and ">c1<" in page
    for burst in expected.bursts:
        assert f">{burst.lane_id}<" in page


async def test_the_form_alone_then_bad_parameters(web_client) -> None:
    """Without parameters: the form with every field of the params Struct; an unknown or a bad
    parameter: 400, as from the API; an unknown report: 404."""
    analyst = await web_client(Role.ADMIN)
    answer = await analyst.client.get("/analyst/report/hotel-check")
    assert answer.status == 200
    page = await answer.text()
    assert 'name="week_start"' in page and 'name="grace_minutes"' in page
    bad = await analyst.client.get("/analyst/report/construction", params={"since": "yesterday"})
    assert bad.status == 400
    unknown = await analyst.client.get("/analyst/report/anomalies", params={"x'; --": "1"})
    assert unknown.status == 400
    assert (await analyst.client.get("/analyst/report/nope")).status == 404


@pytest.mark.parametrize("role", [Role.SITE_MANAGER, Role.TENANT])
async def test_site_staff_never_reach_a_report(role: Role, web_client) -> None:
    """Site managers and tenants get 403 on every report, with or without parameters."""
    staff = await web_client(role, ["A"])
    for name in ("anomalies", "hotel-check", "construction"):
        answer = await staff.client.get(f"/analyst/report/{name}", params=QUERY)
        assert answer.status == 403
