"""Fixtures of the fault tests: one restartable PostgreSQL per session, a database per test,
and clusters of real processes on it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.faults.cluster import Cluster
from tests.faults.postgres import PostgresServer


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server of our own (pgserver's binaries, run with pg_ctl) that tests may
    restart; stopped and removed at the end of the session, even after a failure."""
    server = PostgresServer.launch()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
async def fault_dsn(postgres: PostgresServer) -> AsyncIterator[str]:
    """A new database on that server, migrated and partitioned; dropped after the test."""
    dsn = await postgres.create_database()
    try:
        yield dsn
    finally:
        if not await asyncio.to_thread(postgres.is_running):
            await asyncio.to_thread(postgres.start)  # a test that stopped it must not break others
        await postgres.drop_database(dsn)


@pytest.fixture
async def make_cluster(
    tmp_path: Path, postgres: PostgresServer, fault_dsn: str
) -> AsyncIterator[Callable[..., Awaitable[Cluster]]]:
    """``await make_cluster(gateways=N, rate_hz=R, ...)``: a started Cluster on this test's
    database; every process of it killed at teardown, whatever the test did."""
    made: list[Cluster] = []

    async def make(**options: Any) -> Cluster:
        cluster = await Cluster.create(
            tmp_path / f"cluster{len(made)}", postgres, fault_dsn, **options
        )
        made.append(cluster)
        return cluster

    try:
        yield make
    finally:
        for cluster in made:
            await cluster.aclose()
