"""The one type for "a database connection" in central/: a plain asyncpg connection or one
borrowed from a pool (``async with pool.acquire() as con``), which asyncpg types apart."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

if TYPE_CHECKING:  # the stubs make both generic; at run time they are plain classes
    Connection: TypeAlias = asyncpg.Connection[Any] | PoolConnectionProxy[Any]
else:
    Connection = asyncpg.Connection | PoolConnectionProxy

__all__ = ["Connection"]
