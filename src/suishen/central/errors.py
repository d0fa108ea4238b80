"""The hub's one exception tree, mapped to HTTP status in one middleware (DESIGN §2, §7).

Every front door (the gateways' mTLS API now; the analyst API and web pages next) raises these
and lets ``error_middleware`` answer; the CLI catches HubError and exits non-zero with one line.
Foreign exceptions are translated at the boundary (``raise NotAcceptable(...) from exc``)::

    HubError                    500  a broken contract inside the hub (a bug)
     +-- BadRequest             400  malformed input of any shape (the wire parser's BatchError)
     |    +-- PayloadTooLarge   413  a body or batch over its limit
     +-- Unauthorized           401  no valid session or bearer token (web: login page)
     +-- Forbidden              403  unknown, disabled or revoked gateway; a scope it may not see
     +-- NotFound               404  no such thing (or not in the caller's scope)
     +-- Conflict               409  the request contradicts what is stored
     +-- Unavailable            503  the database failed in a retryable way (+ Retry-After)

Each carries machine fields (``status``, ``code``, and ``fields`` for the JSON answer) beside
its message. Anything else escaping a handler is logged with its traceback and answered 500
without details: malformed input must never reach that branch (tests send it every shape).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

import structlog
from aiohttp import web

log = structlog.get_logger("suishen.central.errors")

RETRY_AFTER_S = "1"


class HubError(Exception):
    """Base of the hub's errors; ``status`` is the HTTP status a front door answers."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal"

    def __init__(self, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.fields = fields

    def as_json(self) -> dict[str, Any]:
        return {"error": str(self), "code": self.code, **self.fields}


class BadRequest(HubError):
    status = 400
    code = "bad_request"


class PayloadTooLarge(BadRequest):
    status = 413
    code = "too_large"


class Unauthorized(HubError):
    status = 401
    code = "unauthorized"


class Forbidden(HubError):
    status = 403
    code = "forbidden"


class NotFound(HubError):
    status = 404
    code = "not_found"


class Conflict(HubError):
    status = 409
    code = "conflict"


class Unavailable(HubError):
    status = 503
    code = "unavailable"


def error_response(exc: HubError) -> web.Response:
    """The JSON answer for one HubError (503 adds Retry-After)."""
    response = web.json_response(exc.as_json(), status=exc.status)
    if isinstance(exc, Unavailable):
        response.headers["Retry-After"] = RETRY_AFTER_S
    return response


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """HubError -> its status and JSON body, logged once; aiohttp's own HTTP errors pass."""
    try:
        return await handler(request)
    except HubError as exc:
        level = log.error if exc.status >= 500 else log.warning
        level("request_refused", path=request.path, status=exc.status, error=str(exc))
        return error_response(exc)
    except web.HTTPException:
        raise
    except Exception:
        log.exception("request_failed", path=request.path)
        return error_response(HubError("internal error"))
