"""The analyst API's contract: its operations, and the OpenAPI 3.1 document built from the same
msgspec Structs the handlers decode and encode with (DESIGN §7; issue 11 item 3).

``QUERIES`` (central/analyst_queries.py, light to import for the CLI) names each analyst
query (central/queries/, ``async def f(con, scope, params) -> rows``) by "module:function";
its params and result types are read from the function's annotations, so the API
(central/analyst_api.py), the CLI (commands/analyst.py) and this document cannot disagree with
the query.  A query whose module is not there yet is left out (``available_queries()``).

``document(operations)`` is the OpenAPI document: GET operations take their params Struct's
fields as query parameters (a list field: a repeated parameter), others a JSON body; answers
are the result type (JSON) or CSV; every operation documents the errors a front door answers
(400, 401, 403, 404, 503; JSON ``Error``).  Schemas come from
``msgspec.json.schema_components`` (JSON Schema 2020-12, as OpenAPI 3.1 uses).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any, Final

import msgspec

from suishen.central.analyst_queries import QUERIES, Query, available_queries, load_query

__all__ = [
    "API_PREFIX",
    "QUERIES",
    "Error",
    "Operation",
    "Query",
    "available_queries",
    "document",
    "load_query",
]

API_PREFIX: Final = "/api/v1"
REF_TEMPLATE: Final = "#/components/schemas/{name}"

# --------------------------------------------------------------------------- the document


class Error(msgspec.Struct, frozen=True, kw_only=True):
    """Every refused request: a message and a machine code (more fields may follow)."""

    error: str
    code: str


ERRORS: Final = {
    "400": "malformed request (a parameter, the body or the content type)",
    "401": "no valid session or bearer token",
    "403": "the user's role may not do this (site managers and tenants: every endpoint)",
    "404": "no such thing (or not in the caller's scope)",
    "503": "the database is unavailable for a moment (Retry-After)",
}


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Operation:
    """One operation of the API."""

    method: str  # get, post, patch, delete
    path: str  # below API_PREFIX, e.g. "/watchlist/{person_key}"
    operation_id: str
    summary: str
    params: type | None = None  # query parameters (a Struct)
    body: type | None = None  # JSON body (a Struct)
    result: Any = None  # JSON answer type
    status: int = 200
    csv: bool = False  # the answer is text/csv
    admin_only: bool = False
    path_params: tuple[str, ...] = ()


def _strip_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter cannot be null: drop the null alternative of an optional field."""
    if schema.get("default", 0) is None:
        schema = {k: v for k, v in schema.items() if k != "default"}
    options = schema.get("anyOf")
    if options is not None:
        rest = [o for o in options if o != {"type": "null"}]
        if len(rest) == 1:
            return {**{k: v for k, v in schema.items() if k != "anyOf"}, **rest[0]}
        return {**schema, "anyOf": rest}
    return schema


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF_TEMPLATE.format(name=name)}


def document(operations: Iterable[Operation], *, version: str = "1") -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``operations``."""
    operations = list(operations)
    types: list[Any] = [Error]
    for op in operations:
        types += [t for t in (op.params, op.body, op.result) if t is not None]
    schemas, components = msgspec.json.schema_components(types, ref_template=REF_TEMPLATE)
    by_type = dict(zip(map(id, types), schemas, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        parameters: list[dict[str, Any]] = [
            {"name": name, "in": "path", "required": True,
             "schema": {"type": "string", "pattern": "^[0-9a-f]{64}$"}}
            for name in op.path_params
        ]  # fmt: skip
        if op.params is not None:
            component = components[op.params.__name__]
            required = set(component.get("required", ()))
            for name, schema in component.get("properties", {}).items():
                parameter: dict[str, Any] = {
                    "name": name,
                    "in": "query",
                    "required": name in required,
                    "schema": _strip_null(schema),
                }
                if schema.get("type") == "array":
                    parameter["style"], parameter["explode"] = "form", True
                parameters.append(parameter)
        answer: dict[str, Any]
        if op.csv:
            answer = {"text/csv": {"schema": {"type": "string"}}}
        else:
            answer = {"application/json": {"schema": by_type[id(op.result)]}}
        entry: dict[str, Any] = {
            "operationId": op.operation_id,
            "summary": op.summary,
            "security": [{"bearer": []}, {"session": []}],
            "parameters": parameters,
            "responses": {
                str(op.status): {"description": "done", "content": answer},
                **{
                    code: {
                        "description": why,
                        "content": {"application/json": {"schema": _ref("Error")}},
                    }
                    for code, why in ERRORS.items()
                },
            },
        }
        if op.body is not None:
            entry["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": by_type[id(op.body)]}},
            }
        if op.admin_only:
            entry["description"] = "admin only"
        paths.setdefault(API_PREFIX + op.path, {})[op.method] = entry
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Suishen Gate analyst API",
            "version": version,
            "description": "Analysts' queries, audited reveal, watchlist and privacy "
            "functions of the Suishen Gate hub. Analysts and admins only.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "suishen_session"},
            },
        },
    }
