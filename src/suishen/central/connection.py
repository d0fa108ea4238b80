"""The one type for "a database connection" in central/: a plain asyncpg connection or one
borrowed from a pool (``async with pool.acquire() as con``), which asyncpg types apart."""

from __future__ import annotations

from typing import Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

Connection: TypeAlias = asyncpg.Connection[Any] | PoolConnectionProxy[Any]

__all__ = ["Connection"]
