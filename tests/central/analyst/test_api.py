"""The analyst API over a real web listener and PostgreSQL: the OpenAPI document is valid and
describes every answer (each one checked with openapi-core), queries answer what the data was
built to give, reveals and exports are audited, and site managers and tenants are refused on
every endpoint."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from openapi_spec_validator import validate

from suishen.central.analyst_api import openapi_document
from suishen.central.config import HubConfig
from suishen.central.keys import init_keys, load_seal_key
from suishen.central.store import users
from suishen.protocol.person import person_key

from .apicheck import call
from .kit import GATEWAY, PEPPER, SITE, Sealer, add_sites

IDN = "110101199003078515"
INDEX = "aa" * 32
CONTACT = "bb" * 32
STRANGER = "cc" * 32
T0 = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=6)


@pytest.fixture
def web_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HubConfig:
    """A hub whose state dir holds its keys, and whose pepper is in the environment."""
    init_keys(tmp_path)
    monkeypatch.setenv("SUISHEN_PEPPER", PEPPER.decode())
    config = HubConfig()
    return dataclasses.replace(config, hub=dataclasses.replace(config.hub, state_dir=tmp_path))


def operations() -> list[tuple[str, str]]:
    return [(method, path) for path, item in openapi_document()["paths"].items() for method in item]


def concrete(path: str) -> str:
    return path.replace("{person_key}", INDEX)


async def add_visit(  # noqa: PLR0917
    con: asyncpg.Connection, key: str, seq: int, start_min: int, end_min: int, site: str = SITE
) -> None:
    await con.execute(
        "INSERT INTO visits (site_id, person_key, in_gateway_id, in_seq, in_ts, "
        "out_gateway_id, out_seq, out_ts, close_reason) "
        "VALUES ($1, $2, $3, $4::bigint, $5, $3, $4::bigint + 1000, $6, 'out')",
        site,
        key,
        GATEWAY,
        seq,
        T0 + dt.timedelta(minutes=start_min),
        T0 + dt.timedelta(minutes=end_min),
    )


async def test_the_document_is_valid_openapi_31_and_served_without_login(anon_client: Any) -> None:
    """GET /api/v1/openapi.json: no login needed, a valid OpenAPI 3.1 document naming every
    endpoint of the brief that exists on this branch."""
    async with anon_client.get("/api/v1/openapi.json") as response:
        assert response.status == 200
        document = await response.json()
    validate(document)
    assert document["openapi"] == "3.1.0"
    paths = set(document["paths"])
    assert {
        "/api/v1/reveal", "/api/v1/audit", "/api/v1/watchlist", "/api/v1/watchlist/{person_key}",
        "/api/v1/access-report", "/api/v1/retention", "/api/v1/trace", "/api/v1/trace.csv",
    } <= paths  # fmt: skip


@pytest.mark.parametrize("role", ["site_manager", "tenant"])
async def test_site_managers_and_tenants_get_403_on_every_endpoint(
    web_client: Any, role: str
) -> None:
    """Every operation of the document, with a session of a site manager or a tenant (CSRF
    and Origin right): 403, answered as documented."""
    wc = await web_client(role, [SITE])
    headers = wc.unsafe_headers(**{"X-CSRF-Token": wc.csrf})
    ops = operations()
    assert len(ops) >= 12
    for method, path in ops:
        body = {} if method in ("post", "patch") else None
        answer = await call(wc.client, method.upper(), concrete(path), json_body=body,
                            headers=headers)  # fmt: skip
        assert answer.status == 403, (method, path, answer.body)


async def test_anonymous_requests_get_401(anon_client: Any) -> None:
    """No session, no token: 401 on every operation (JSON, documented)."""
    for method, path in operations():
        answer = await call(anon_client, method.upper(), concrete(path))
        assert answer.status == 401, (method, path)


async def bearer(db_pool: asyncpg.Pool, username: str, role: str) -> dict[str, str]:
    async with db_pool.acquire() as con:
        await users.add_user(con, username, role=role, password="x" * 12, display_name=username)
        token = await users.create_token(con, username)
    return {"Authorization": f"Bearer {token}"}


async def test_trace_through_the_api_and_its_csv_export_is_audited(
    anon_client: Any, db_pool: asyncpg.Pool
) -> None:
    """Index person 60 minutes at A; a contact overlapping 30 minutes, a stranger overlapping
    5 (below the 15-minute margin): the API ranks the contact alone; the CSV has it and the
    export leaves an audit row."""
    auth_headers = await bearer(db_pool, "ana", "analyst")
    async with db_pool.acquire() as con:
        await add_sites(con)
        await add_visit(con, INDEX, 1, 0, 60)
        await add_visit(con, CONTACT, 2, 30, 90)
        await add_visit(con, STRANGER, 3, 55, 120)
    params = {"person_key": INDEX, "until": (T0 + dt.timedelta(hours=3)).isoformat()}
    answer = await call(anon_client, "GET", "/api/v1/trace", params=params, headers=auth_headers)
    assert answer.status == 200, answer.body
    contacts = answer.json()["contacts"]
    assert [(c["person_key"], c["overlap_minutes"]) for c in contacts] == [(CONTACT, 30.0)]
    csv_answer = await call(anon_client, "GET", "/api/v1/trace.csv", params=params,
                            headers=auth_headers)  # fmt: skip
    assert csv_answer.status == 200 and csv_answer.content_type == "text/csv"
    lines = csv_answer.body.decode("utf-8-sig").splitlines()
    assert lines[0].startswith("person_key,degree") and lines[1].startswith(CONTACT)
    async with db_pool.acquire() as con:
        row = await con.fetchrow("SELECT actor, action, target::text FROM audit "
                                 "WHERE action = 'export'")  # fmt: skip
    assert row["actor"] == "ana" and "trace.csv" in row["target"]


@pytest.mark.parametrize(
    "params",
    [
        {"person_key": "x"},
        {"person_key": INDEX, "days": "0"},
        {"person_key": INDEX, "until": "not a time"},
        {"person_key": INDEX, "until": "0001-01-01T00:00:00+00:00"},
        {"person_key": INDEX, "bogus": "1"},
        [("person_key", INDEX), ("person_key", INDEX)],
    ],
)
async def test_bad_query_parameters_are_400(
    anon_client: Any, db_pool: asyncpg.Pool, params: Any
) -> None:
    """Malformed, out-of-range, unknown and repeated parameters: 400 (documented), never 500."""
    auth_headers = await bearer(db_pool, "ana", "analyst")
    answer = await call(anon_client, "GET", "/api/v1/trace", params=params, headers=auth_headers)
    assert answer.status == 400, answer.body


async def test_reveal_through_the_api(
    anon_client: Any, web_client: Any, db_pool: asyncpg.Pool, web_config: HubConfig
) -> None:
    """Without a case: 400 and no audit row; with reason and case: the identity, and its audit
    row in the trail an admin reads (an analyst may not read the trail); a session without
    its CSRF token is refused."""
    auth_headers = await bearer(db_pool, "ana", "analyst")
    admin_headers = await bearer(db_pool, "root", "admin")
    hub_key = load_seal_key(web_config.hub.state_dir)
    async with db_pool.acquire() as con:
        await add_sites(con)
        key = await Sealer(hub_key).scan(con, 1, T0, idn=IDN, name="张三明")
    no_case = {"person_key": key, "reason": "tracing", "case_ref": ""}
    refused = await call(anon_client, "POST", "/api/v1/reveal", headers=auth_headers,
                         json_body=no_case)  # fmt: skip
    assert refused.status == 400
    body = {"person_key": key, "reason": "tracing", "case_ref": "CASE-9"}
    opened = await call(anon_client, "POST", "/api/v1/reveal", headers=auth_headers,
                        json_body=body)  # fmt: skip
    assert opened.status == 200, opened.body
    (identity,) = opened.json()["identities"]
    assert identity["idn"] == IDN and identity["name"] == "张三明"
    wc = await web_client("analyst")
    no_csrf = await call(wc.client, "POST", "/api/v1/reveal", headers=wc.unsafe_headers(),
                         json_body=body)  # fmt: skip
    assert no_csrf.status == 403
    denied = await call(anon_client, "GET", "/api/v1/audit", headers=auth_headers)
    assert denied.status == 403
    trail = await call(anon_client, "GET", "/api/v1/audit", headers=admin_headers,
                       params={"action": "reveal"})  # fmt: skip
    assert trail.status == 200
    (row,) = trail.json()
    assert (row["actor"], row["case_ref"], row["reason"]) == ("ana", "CASE-9", "tracing")
    assert row["audit_id"] == opened.json()["audit_id"]


async def test_watchlist_crud_access_report_and_retention(
    anon_client: Any, db_pool: asyncpg.Pool
) -> None:
    """Add by document (the key under the hub's pepper), list, change, remove; a too-long
    expiry is 400; the access report is admin only; retention status answers."""
    ana = await bearer(db_pool, "ana", "analyst")
    root = await bearer(db_pool, "root", "admin")
    expires = (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).isoformat()
    entry = {"document": {"idt": "RIC", "idn": IDN}, "level": "notify", "route": "police",
             "purpose": "missing_person", "case_ref": "MP-1", "expires_at": expires}  # fmt: skip
    added = await call(anon_client, "POST", "/api/v1/watchlist", headers=ana, json_body=entry)
    assert added.status == 201, added.body
    key = person_key(PEPPER, "RIC", IDN)
    assert added.json()["person_key"] == key
    too_long = dict(entry, expires_at=(dt.datetime.now(dt.UTC) + dt.timedelta(days=99)).isoformat())
    assert (await call(anon_client, "POST", "/api/v1/watchlist", headers=ana,
                       json_body=too_long)).status == 400  # fmt: skip
    listed = await call(anon_client, "GET", "/api/v1/watchlist", headers=ana)
    assert [e["person_key"] for e in listed.json()] == [key]
    changed = await call(anon_client, "PATCH", f"/api/v1/watchlist/{key}", headers=ana,
                         json_body={"level": "deny"})  # fmt: skip
    assert changed.status == 200 and changed.json()["level"] == "deny"
    removed = await call(anon_client, "DELETE", f"/api/v1/watchlist/{key}", headers=ana,
                         params={"reason": "found"})  # fmt: skip
    assert removed.status == 200 and removed.json()["removed_at"] is not None
    again = await call(anon_client, "DELETE", f"/api/v1/watchlist/{key}", headers=ana)
    assert again.status == 404
    report_body = {"document": {"idt": "RIC", "idn": IDN}, "reason": "SAR", "case_ref": "SAR-1"}
    assert (await call(anon_client, "POST", "/api/v1/access-report", headers=ana,
                       json_body=report_body)).status == 403  # fmt: skip
    report = await call(anon_client, "POST", "/api/v1/access-report", headers=root,
                        json_body=report_body)  # fmt: skip
    assert report.status == 200 and report.json()["person_key"] == key
    kept = await call(anon_client, "GET", "/api/v1/retention", headers=ana)
    assert kept.status == 200
    assert {t["table"] for t in kept.json()["tables"]} >= {"scans", "visits", "stays"}
    async with db_pool.acquire() as con:
        actions = [r["action"] for r in await con.fetch("SELECT action FROM audit ORDER BY 1")]
    assert actions == sorted(
        ["access_report", "watchlist_add", "watchlist_change", "watchlist_remove"]
    )
