"""A people-facing query takes a Scope: the gateway list shows a site manager's sites only, an
analyst's all of them; the CLI prints it through the same function."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import asyncpg
import pytest

from suishen.central.scope import Scope
from suishen.central.store.gateways import list_gateways
from suishen.cli import main
from suishen.sync import pki

from .hubkit import register

NOW = dt.datetime.now(dt.UTC)


async def test_list_gateways_keeps_to_its_scope(con: asyncpg.Connection, tmp_path: Path) -> None:
    """Scope.sites(...) yields exactly those sites' gateways; everywhere() yields all; an empty
    scope yields none. Sync progress and the certificate pin are shown as stored."""
    pki.init_ca(tmp_path / "pki", now=NOW)
    cert, _ = pki.issue_gateway(tmp_path / "pki", "gw-h1", now=NOW)
    await register(con, "gw-h1", "hotel-1", kind="hotel", cert=cert)
    await register(con, "gw-o1", "office-1")
    await register(con, "gw-o2", "office-1", enabled=False)
    await con.execute("UPDATE gateways SET high_water = 42 WHERE gateway_id = 'gw-h1'")

    everything = await list_gateways(con, Scope.everywhere())
    assert [(g.site_id, g.gateway_id) for g in everything] == [
        ("hotel-1", "gw-h1"),
        ("office-1", "gw-o1"),
        ("office-1", "gw-o2"),
    ]
    hotel = await list_gateways(con, Scope.sites(["hotel-1"]))
    assert [g.gateway_id for g in hotel] == ["gw-h1"]
    assert hotel[0].cert_pinned and hotel[0].high_water == 42 and hotel[0].site_kind == "hotel"
    office = await list_gateways(con, Scope.sites(["office-1"]))
    assert [(g.gateway_id, g.enabled, g.cert_pinned) for g in office] == [
        ("gw-o1", True, False),
        ("gw-o2", False, False),
    ]
    assert await list_gateways(con, Scope.sites([])) == ()


async def test_gateway_list_command(
    cli_dsn: str, con: asyncpg.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    """`suishen hub gateway list [--site S]` prints one line per gateway in scope."""
    await register(con, "gw-h1", "hotel-1", kind="hotel")
    await register(con, "gw-o1", "office-1")
    assert await asyncio.to_thread(main, ["hub", "gateway", "list", "--dsn", cli_dsn]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("gateway\tsite\tkind")
    assert [line.split("\t")[:3] for line in lines[1:]] == [
        ["gw-h1", "hotel-1", "hotel"],
        ["gw-o1", "office-1", "building"],
    ]
    argv = ["hub", "gateway", "list", "--site", "office-1", "--dsn", cli_dsn]
    assert await asyncio.to_thread(main, argv) == 0
    assert [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()[1:]] == ["gw-o1"]
