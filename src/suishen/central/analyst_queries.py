"""The analyst queries by name (central/queries/), light to import: the CLI lists them at
startup without importing a query module.  ``load_query(name)`` reads a query's params and
result types from its function's annotations (``async def f(con, scope, params) -> rows``).
A query whose module or function is not there yet is left out (``available_queries()``)."""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import typing
from collections.abc import Callable
from typing import Any, Final

# name (URL path segment and CLI sub-command) -> "module:function"
QUERIES: Final[dict[str, str]] = {
    "trace": "suishen.central.queries.trace:trace",
    "crowd": "suishen.central.queries.crowd:crowd",
    "occupancy": "suishen.central.queries.crowd:occupancy",
    "hotel-check": "suishen.central.queries.hotel_check:hotel_check",
    "construction": "suishen.central.queries.construction:construction",
    "watchlist-hits": "suishen.central.queries.watchlist_hits:watchlist_hits",
    "anomalies": "suishen.central.queries.anomalies:anomalies",
}


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Query:
    """One analyst query: its function, params type and result type."""

    name: str
    function: Callable[..., Any]
    params: type
    result: Any


def load_query(name: str) -> Query | None:
    """The query ``name`` of QUERIES, or None when its module or function is not there."""
    module_name, _, function_name = QUERIES[name].partition(":")
    if importlib.util.find_spec(module_name) is None:
        return None
    function = getattr(importlib.import_module(module_name), function_name, None)
    if function is None:
        return None
    hints = typing.get_type_hints(function)
    return Query(name=name, function=function, params=hints["params"], result=hints["return"])


def available_queries() -> list[Query]:
    """The queries of QUERIES whose module and function exist."""
    return [query for name in QUERIES if (query := load_query(name)) is not None]
