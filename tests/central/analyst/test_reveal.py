"""Reveal and the access report on real PostgreSQL: a sealed identity opens only with a reason
and a case reference, only for analysts and admins, and every opening leaves an audit row."""

from __future__ import annotations

import datetime as dt

import asyncpg
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from suishen.central.errors import BadRequest, Forbidden
from suishen.central.reveal import (
    AccessReportRequest,
    RecordRef,
    access_report,
    reveal,
)
from suishen.central.store.audit import AuditParams, audit_export, trail
from suishen.central.store.watchlist import Document
from suishen.protocol.sealing import HubOpener

from .kit import GATEWAY, OTHER_SITE, PEPPER, SITE, Sealer, add_sites, add_user

IDN = "110101199003078515"
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)


@pytest.fixture
def hub_key() -> X25519PrivateKey:
    return X25519PrivateKey.generate()


async def test_reveal_opens_with_reason_and_case_and_audits(
    con: asyncpg.Connection, hub_key: X25519PrivateKey
) -> None:
    """An analyst with a reason and a case gets the full identity; one audit row names who,
    which record, why and which case; the number appears nowhere in the audit row."""
    analyst = await add_user(con, "ana", "analyst")
    key = await Sealer(hub_key).scan(con, 1, NOW, idn=IDN, name="张三明")
    result = await reveal(
        con, analyst, [RecordRef(gateway_id=GATEWAY, seq=1, ts=NOW)], "contact tracing",
        "CASE-7", opener=HubOpener(hub_key),
    )  # fmt: skip
    (identity,) = result.identities
    assert identity.opened and identity.idn == IDN and identity.name == "张三明"
    assert identity.person_key == key and identity.site_id == SITE
    row = await con.fetchrow("SELECT * FROM audit WHERE audit_id = $1", result.audit_id)
    assert row["actor"] == "ana" and row["user_id"] == analyst.user_id
    assert row["action"] == "reveal" and row["reason"] == "contact tracing"
    assert row["case_ref"] == "CASE-7" and row["person_key"] == key
    assert IDN not in row["target"] and "张三明" not in row["target"]
    assert '"seq": 1' in row["target"]


@pytest.mark.parametrize(("reason", "case_ref"), [("", "CASE-1"), ("why", ""), ("  ", "  ")])
async def test_reveal_without_reason_or_case_is_refused_and_opens_nothing(
    con: asyncpg.Connection, hub_key: X25519PrivateKey, reason: str, case_ref: str
) -> None:
    """No reason or no case reference: BadRequest, no audit row, nothing opened."""
    analyst = await add_user(con, "ana", "analyst")
    await Sealer(hub_key).scan(con, 1, NOW, idn=IDN, name="张三明")
    with pytest.raises(BadRequest):
        await reveal(
            con, analyst, [RecordRef(gateway_id=GATEWAY, seq=1, ts=NOW)], reason, case_ref,
            opener=HubOpener(hub_key),
        )  # fmt: skip
    assert await con.fetchval("SELECT count(*) FROM audit") == 0


@pytest.mark.parametrize("role", ["site_manager", "tenant"])
async def test_reveal_is_refused_to_site_managers_and_tenants(
    con: asyncpg.Connection, hub_key: X25519PrivateKey, role: str
) -> None:
    """Only analysts and admins reveal, whatever front door calls the function."""
    manager = await add_user(con, "mgr", "site_manager")
    manager = type(manager)(user_id=manager.user_id, username="mgr", role=role)
    await Sealer(hub_key).scan(con, 1, NOW, idn=IDN, name="张三明")
    with pytest.raises(Forbidden):
        await reveal(
            con, manager, [RecordRef(gateway_id=GATEWAY, seq=1, ts=NOW)], "why", "CASE-1",
            opener=HubOpener(hub_key),
        )  # fmt: skip
    assert await con.fetchval("SELECT count(*) FROM audit") == 0


async def test_reveal_by_person_key_and_records_that_do_not_open(
    con: asyncpg.Connection, hub_key: X25519PrivateKey
) -> None:
    """A person key opens their latest sealed scan; a missing record, an unsealed one and one
    sealed to another hub key come back unopened with their reason, and are audited too."""
    admin = await add_user(con, "root", "admin")
    sealer = Sealer(hub_key)
    key = await sealer.scan(con, 1, NOW - dt.timedelta(hours=2), idn=IDN, name="张三明")
    await sealer.scan(con, 2, NOW - dt.timedelta(hours=1), idn=IDN, name="张三明")
    await sealer.scan(con, 3, NOW, idn=IDN, name="张三明", sealed=False)
    await Sealer(X25519PrivateKey.generate(), "gw-other").scan(con, 1, NOW, idn="X1", name="李四")
    latest = await reveal(con, admin, key, "why", "CASE-2", opener=HubOpener(hub_key))
    assert [(i.seq, i.opened) for i in latest.identities] == [(2, True)]
    refs = [
        RecordRef(gateway_id=GATEWAY, seq=99, ts=NOW),
        RecordRef(gateway_id=GATEWAY, seq=3, ts=NOW),
        RecordRef(gateway_id="gw-other", seq=1, ts=NOW),
    ]
    result = await reveal(con, admin, refs, "why", "CASE-2", opener=HubOpener(hub_key))
    assert [(i.opened, i.error) for i in result.identities] == [
        (False, "not_found"),
        (False, "not_sealed"),
        (False, "does_not_open"),
    ]
    assert all(i.idn is None for i in result.identities)
    assert await con.fetchval("SELECT count(*) FROM audit WHERE action = 'reveal'") == 2


async def test_the_table_refuses_a_reveal_row_without_a_case(con: asyncpg.Connection) -> None:
    """The audit table itself refuses a reveal row without a case reference (0009's CHECK)."""
    with pytest.raises(asyncpg.CheckViolationError):
        await con.execute("INSERT INTO audit (actor, action, reason) VALUES ('x', 'reveal', 'y')")


async def test_access_report_lists_sites_and_days_for_admins_only(
    con: asyncpg.Connection, hub_key: X25519PrivateKey
) -> None:
    """The person's report: per site and day, how often and when; admin only; audited with
    the key, never the number."""
    await add_sites(con)
    admin = await add_user(con, "root", "admin")
    analyst = await add_user(con, "ana", "analyst")
    sealer = Sealer(hub_key)
    yesterday = NOW - dt.timedelta(days=1)
    await sealer.scan(con, 1, yesterday, idn=IDN, name="张三明")
    await sealer.scan(con, 2, yesterday + dt.timedelta(minutes=5), idn=IDN, name="张三明")
    await sealer.scan(con, 3, NOW, idn=IDN, name="张三明", site_id=OTHER_SITE)
    await sealer.scan(con, 4, NOW, idn="110101199003070000", name="王五")
    request = AccessReportRequest(
        document=Document(idt="RIC", idn=IDN), reason="subject access request", case_ref="SAR-1"
    )
    with pytest.raises(Forbidden):
        await access_report(con, analyst, request, pepper=PEPPER)
    report = await access_report(con, admin, request, pepper=PEPPER)
    summary = [(r.site_id, r.site_name, r.day, r.scans) for r in report.rows]
    assert summary == [
        (SITE, "Tower A", yesterday.date(), 2),
        (OTHER_SITE, "Hall B", NOW.date(), 1),
    ]
    row = await con.fetchrow("SELECT * FROM audit WHERE audit_id = $1", report.audit_id)
    assert row["action"] == "access_report" and row["case_ref"] == "SAR-1"
    assert row["person_key"] == report.person_key and IDN not in row["target"]


async def test_exports_are_audited_and_the_trail_filters(con: asyncpg.Connection) -> None:
    """audit_export writes one row per export; trail filters by action and pages newest first."""
    analyst = await add_user(con, "ana", "analyst")
    for n in range(3):
        await audit_export(con, analyst, what="trace.csv", rows=n, params={"window_days": 14})
    rows = await trail(con, AuditParams(action="export", limit=2))
    assert [r.target["rows"] for r in rows] == [2, 1]
    more = await trail(con, AuditParams(action="export", before_id=rows[-1].audit_id))
    assert [r.target["rows"] for r in more] == [0]
    assert rows[0].actor == "ana" and rows[0].target["what"] == "trace.csv"
    assert await trail(con, AuditParams(action="reveal")) == []
