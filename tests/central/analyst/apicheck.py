"""Every API answer in the tests is validated against the served OpenAPI document with
openapi-core (status documented, body matching its schema)."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from aiohttp.test_utils import TestClient
from multidict import CIMultiDict, MultiDict
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters

from suishen.central.analyst_api import openapi_document

SPEC = OpenAPI.from_dict(openapi_document())


@dataclasses.dataclass(frozen=True, slots=True)
class _Request:
    method: str
    path: str
    query: MultiDict[str]
    body: bytes | None
    content_type: str
    host_url: str = "http://127.0.0.1"

    @property
    def parameters(self) -> RequestParameters:
        return RequestParameters(query=self.query, header=CIMultiDict(), cookie=MultiDict())


@dataclasses.dataclass(frozen=True, slots=True)
class _Response:
    status_code: int
    content_type: str
    headers: CIMultiDict[str]
    data: bytes | str  # text/* answers as text: openapi-core checks them as strings


@dataclasses.dataclass(frozen=True, slots=True)
class Answer:
    status: int
    body: bytes
    content_type: str

    def json(self) -> Any:
        return json.loads(self.body)


async def call(
    client: TestClient,
    method: str,
    path: str,
    *,
    params: list[tuple[str, str]] | dict[str, str] | None = None,
    json_body: Any = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    """One request to the API; the answer is checked against the document (AssertionError
    names what does not match)."""
    data = None if json_body is None else json.dumps(json_body).encode()
    send_headers = dict(headers or {})
    if data is not None:
        send_headers.setdefault("Content-Type", "application/json")
    async with client.request(
        method, path, params=params, data=data, headers=send_headers, allow_redirects=False
    ) as response:
        body = await response.read()
        answer = Answer(response.status, body, response.content_type)
        query: MultiDict[str] = MultiDict(
            list(params.items()) if isinstance(params, dict) else list(params or [])
        )
        request = _Request(method.lower(), path, query, data, send_headers.get("Content-Type", ""))
        text = response.content_type.startswith("text/")
        spec_response = _Response(
            response.status,
            response.content_type,
            CIMultiDict(response.headers),
            body.decode("utf-8") if text else body,
        )
        result = SPEC.unmarshal_response(request, spec_response)  # type: ignore[arg-type]
        assert not result.errors, (method, path, response.status, body[:300], result.errors)
    return answer
