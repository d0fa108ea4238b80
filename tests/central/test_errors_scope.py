"""The hub's one error tree answered by one middleware, and Scope as the site filter of SQL."""

from __future__ import annotations

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from suishen.central.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    HubError,
    NotFound,
    PayloadTooLarge,
    Unavailable,
    error_middleware,
)
from suishen.central.scope import Scope

CASES = [
    (BadRequest, 400),
    (PayloadTooLarge, 413),
    (Forbidden, 403),
    (NotFound, 404),
    (Conflict, 409),
    (Unavailable, 503),
    (HubError, 500),
]


async def _client(raiser: type[Exception], message: str = "nope") -> TestClient:
    async def handler(_request: web.Request) -> web.Response:
        raise raiser(message)

    app = web.Application(middlewares=[error_middleware])
    app.router.add_get("/x", handler)
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


@pytest.mark.parametrize(("error", "status"), CASES, ids=[c[0].__name__ for c in CASES])
async def test_each_hub_error_has_its_status(error: type[HubError], status: int) -> None:
    """Each HubError class is answered with its own status and a JSON body naming it."""
    client = await _client(error, "what went wrong")
    try:
        response = await client.get("/x")
        assert response.status == status
        body = await response.json()
        assert body["error"] == "what went wrong"
        assert body["code"] == error.code
        assert ("Retry-After" in response.headers) == (status == 503)
    finally:
        await client.close()


async def test_a_foreign_exception_is_a_bare_500_without_its_text() -> None:
    """A bug (a foreign exception) is answered 500 and does not leak its message."""
    client = await _client(KeyError, "secret-detail")
    try:
        response = await client.get("/x")
        assert response.status == 500
        assert "secret-detail" not in await response.text()
    finally:
        await client.close()


def test_scope_allows_and_requires() -> None:
    """everywhere() allows any site; sites() exactly its own; require() hides the others."""
    assert Scope.everywhere().allows("any")
    office = Scope.sites(["office-1", "office-2"])
    assert office.allows("office-2")
    assert not office.allows("hotel-1")
    assert office.require("office-1") == "office-1"
    with pytest.raises(NotFound):
        office.require("hotel-1")
    assert not Scope.sites([]).allows("office-1")
    assert office.sql_param() == ["office-1", "office-2"]
    assert Scope.everywhere().sql_param() is None


async def test_scope_filters_rows_in_postgres(db_pool: asyncpg.Pool) -> None:
    """The scope's SQL clause keeps exactly the rows of the scope's sites, in real PostgreSQL."""
    sql = f"SELECT s FROM unnest($2::text[]) AS s WHERE {Scope.sql('$1', 's')} ORDER BY s"
    sites = ["hotel-1", "office-1", "office-2"]
    async with db_pool.acquire() as con:
        for scope, expected in [
            (Scope.everywhere(), sites),
            (Scope.sites(["office-1", "office-2"]), ["office-1", "office-2"]),
            (Scope.sites([]), []),
        ]:
            rows = await con.fetch(sql, scope.sql_param(), sites)
            assert [r["s"] for r in rows] == expected
