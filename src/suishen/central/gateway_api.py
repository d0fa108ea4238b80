"""The gateway listener's HTTP API (mutual TLS; DESIGN §6, wire format: sync/wire.py).

Every request is bound to the gateway its verified client certificate names
(``pki.gateway_id_from_peercert``); the TLS handshake itself refuses a client without a
certificate signed by the deployment CA.  The certificate must also be the one the hub pins for
that gateway (its SHA-256, central/store/gateways.py) and the gateway enabled: else 403 on every
request, whatever the route.

``POST /v1/ingest``
    JSON batch -> ``wire.parse_body`` -> ``ingest.ingest`` -> 200 ``{"high_water",
    "inserted", "duplicates", "rejected": [{"seq", "reason"}]}``.  Refused whole: 400 (not a
    batch), 403 (the body names another gateway than the certificate; the gateway is unknown or
    disabled), 413 (body over ``max_body_bytes`` or more than wire.MAX_ROWS rows), each with
    ``{"error": text, "row": index | null}``; 503 + Retry-After when the database failed in
    a retryable way (the gateway backs off and resends; ingest is idempotent).
``POST /v1/alerts``
    The fast lane: the same batch form holding alert rows only (another kind: 400 naming the
    row); stored deduplicated on (site_id, gateway_id, journal_id, seq); 200
    ``{"stored": n}`` (n new).  Rows outside the clock window or conflicting are left to the
    bulk upload, which rejects them.
Nothing a gateway sends is answered 500: the body is decoded by ``wire.decode_body`` (strict
JSON of bounded depth) and ``wire.parse_batch`` is total; ``If-None-Match`` / ``after`` of
over 18 digits are 400.
``GET /v1/bundles/{kind}`` (kind: trust | watchlist | roster | calendar | emergency)
    ``?after=N&wait=S``: 200 with the signed bundle (``application/cose``, ``ETag: "V"``,
    ``X-Bundle-Version: V``) as soon as its version V > N; else, after S seconds (capped at
    ``long_poll_max_s``, default 30), 304.  Without ``after``, ``If-None-Match: "V"`` sets N
    (plain ETag revalidation); neither: N = 0.  No version yet: 304 without an ETag.  The
    roster and emergency bundles are the gateway's site's; an emergency bundle's version is
    its site's newest command's (the ETag of a 304 is the kind's version).
"""

from __future__ import annotations

import asyncio
import hmac
import time
from typing import Any, Final

import structlog
from aiohttp import web

from suishen.central.bundle_service import BundleService, SignedBundle
from suishen.central.db import DB_POOL
from suishen.central.errors import (
    BadRequest,
    Forbidden,
    HubError,
    NotFound,
    PayloadTooLarge,
    Unavailable,
)
from suishen.central.gateway_registry import GatewayRegistry
from suishen.central.ingest import (
    DEFAULT_POLICY,
    RETRYABLE_ERRORS,
    ingest,
    store_alerts,
)
from suishen.central.listener import BODY_TIMEOUT, BodyError, read_body
from suishen.central.metrics import HUB_METRICS
from suishen.central.partitions import PartitionPolicy
from suishen.central.store.gateways import GatewayAuth, record_backlog
from suishen.protocol.bundles import BUNDLE_KINDS
from suishen.sync.pki import PeerIdentityError, certificate_sha256, gateway_id_from_peercert
from suishen.sync.wire import (
    BACKLOG_HEADER,
    MAX_BODY_BYTES,
    BatchError,
    decode_body,
    parse_batch,
    parse_body,
)

BUNDLES: web.AppKey[BundleService] = web.AppKey("bundles", BundleService)
MAX_BODY: web.AppKey[int] = web.AppKey("max_body_bytes", int)
LONG_POLL_MAX: web.AppKey[float] = web.AppKey("long_poll_max_s", float)
GATEWAY_ID: web.RequestKey[str] = web.RequestKey("gateway_id", str)
GATEWAY: web.RequestKey[GatewayAuth] = web.RequestKey("gateway", GatewayAuth)
GATEWAYS: web.AppKey[GatewayRegistry] = web.AppKey("gateways", GatewayRegistry)
# The clock window and new-partition cap of the ingest (app.py sets it from [retention]).
INGEST_POLICY: web.AppKey[PartitionPolicy] = web.AppKey("ingest_policy", PartitionPolicy)

COSE_TYPE: Final = "application/cose"
MAX_VERSION_DIGITS: Final = 18  # bundle versions are bigints

log = structlog.get_logger("suishen.central.gateway_api")


_BATCH_ERRORS: Final[dict[int, type[HubError]]] = {
    403: Forbidden,  # the body names another gateway than the certificate
    413: PayloadTooLarge,
}


def _refused(exc: BatchError) -> HubError:
    """The wire parser's BatchError as the hub's error (400, 403 or 413), naming the row."""
    return _BATCH_ERRORS.get(exc.status, BadRequest)(str(exc), row=exc.row)


def _peer(transport: Any) -> tuple[Any, str | None]:
    """The verified peer certificate of this connection (as ``getpeercert()``) and its
    fingerprint; (None, None) once the connection is gone (asyncio's SSL transport then raises
    AttributeError from get_extra_info)."""
    if transport is None or transport.is_closing():
        return None, None
    try:
        peercert = transport.get_extra_info("peercert")
        ssl_object = transport.get_extra_info("ssl_object")
    except AttributeError:
        return None, None
    der = None if ssl_object is None else ssl_object.getpeercert(binary_form=True)
    return peercert, None if der is None else certificate_sha256(der)


def _refusal(gateway: GatewayAuth | None, presented: str | None) -> str | None:
    """Why this certificate may not speak for the gateway (None: it may)."""
    if gateway is None or not gateway.enabled:
        return "gateway is unknown or disabled"
    if gateway.cert_sha256 is None:
        return "no certificate is registered for this gateway (revoked or never pinned)"
    if presented is None or not hmac.compare_digest(gateway.cert_sha256, presented):
        return "certificate is not this gateway's current one (replaced or revoked)"
    return None


@web.middleware
async def bind_gateway(request: web.Request, handler: Any) -> web.StreamResponse:
    """Bind the request to the gateway its verified client certificate names, if that
    certificate is the one pinned for the gateway and the gateway is enabled (else 403); then
    read the body whole within the body timeout (else 408, connection closed) before any
    handler runs (central/listener.py)."""
    peercert, presented = _peer(request.transport)  # read now: the lookup below may wait
    try:
        gateway_id = gateway_id_from_peercert(peercert)
    except PeerIdentityError as exc:
        raise Forbidden(f"client certificate: {exc}") from exc
    try:
        gateway = await request.app[GATEWAYS].lookup(gateway_id)
    except RETRYABLE_ERRORS as exc:
        raise Unavailable("database unavailable; retry") from exc
    refusal = _refusal(gateway, presented)
    if gateway is None or refusal is not None:
        log.warning("gateway_refused", gateway_id=gateway_id, why=refusal)
        raise Forbidden(f"gateway {gateway_id!r}: {refusal}")
    request[GATEWAY_ID] = gateway_id
    request[GATEWAY] = gateway
    with structlog.contextvars.bound_contextvars(gateway_id=gateway_id):
        if BODY_TIMEOUT in request.app:
            try:
                await read_body(request, request.app[MAX_BODY])  # whole, in time, or refused
            except BodyError as exc:
                log.warning("body_refused", status=exc.status, error=str(exc))
                refused = web.json_response({"error": str(exc)}, status=exc.status)
                refused.force_close()
                # Answer, then drop the connection: no lingering read of what is still coming.
                await refused.prepare(request)
                await refused.write_eof()
                request.protocol.force_close()
                return refused
        response: web.StreamResponse = await handler(request)
        return response


async def _read_document(request: web.Request) -> Any:
    """The request's JSON body; raises BatchError (400 / 413)."""
    return decode_body(await _read_body(request))  # 400: not JSON, or deeper than MAX_DEPTH


async def _read_body(request: web.Request) -> bytes:
    """The request's body within the size limit; raises BatchError (413)."""
    limit = request.app[MAX_BODY]
    if request.content_length is not None and request.content_length > limit:
        raise BatchError(413, f"body of {request.content_length} bytes is over {limit}")
    try:
        data = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise BatchError(413, f"body is over {limit} bytes") from None
    if len(data) > limit:
        raise BatchError(413, f"body of {len(data)} bytes is over {limit}")
    return data


def _policy(request: web.Request) -> PartitionPolicy:
    return request.app.get(INGEST_POLICY) or DEFAULT_POLICY


async def post_ingest(request: web.Request) -> web.Response:
    gateway_id = request[GATEWAY_ID]
    metrics = request.app[HUB_METRICS]
    started = time.monotonic()
    try:
        batch = parse_body(await _read_body(request), bound_gateway_id=gateway_id)
    except BatchError as exc:
        metrics.refused.inc(str(exc.status))
        raise _refused(exc) from exc
    result = await ingest(request.app[DB_POOL], batch, policy=_policy(request))
    took_s = time.monotonic() - started
    backlog = _reported_backlog(request)
    if backlog is not None:
        async with request.app[DB_POOL].acquire() as con:
            await record_backlog(con, gateway_id, backlog)
    metrics.batches.inc(gateway_id)
    metrics.rows.inc("inserted", amount=result.inserted)
    metrics.rows.inc("duplicate", amount=result.duplicates)
    metrics.rows.inc("rejected", amount=len(result.rejected))
    metrics.latency.observe(took_s)
    log.info(
        "batch ingested",
        gateway_id=gateway_id,
        journal_id=batch.journal_id,
        rows=len(batch.scans) + len(batch.passages) + len(batch.alerts) + len(batch.devices),
        inserted=result.inserted,
        duplicates=result.duplicates,
        rejected=len(result.rejected),
        high_water=result.high_water,
        backlog=backlog,
        ms=round(took_s * 1000, 1),
    )
    return web.json_response(result.as_json())


def _reported_backlog(request: web.Request) -> int | None:
    """The gateway's X-Suishen-Backlog (rows it had yet to upload), if it is a sane number."""
    text = request.headers.get(BACKLOG_HEADER, "")
    if not text.isdigit() or len(text) > 12:
        return None
    return int(text)


def _alert_rows_only(document: Any) -> None:
    rows = document.get("rows") if isinstance(document, dict) else None
    for index, row in enumerate(rows if isinstance(rows, list) else ()):
        if not isinstance(row, dict) or row.get("kind") != "alert":
            raise BatchError(400, f"row {index}: the fast lane takes alert rows only", row=index)


async def post_alerts(request: web.Request) -> web.Response:
    gateway_id = request[GATEWAY_ID]
    try:
        document = await _read_document(request)
        _alert_rows_only(document)
        batch = parse_batch(document, bound_gateway_id=gateway_id)
    except BatchError as exc:
        raise _refused(exc) from exc
    stored = await store_alerts(request.app[DB_POOL], batch, policy=_policy(request))
    if stored:
        log.info("alerts_stored", stored=stored)
    return web.json_response({"stored": stored})


def _etag_version(value: str | None) -> int | None:
    """The version an If-None-Match names; None for another ETag.  Raises ValueError for a
    version out of range (over 18 digits: a bigint, and int() refuses 4300+ digits)."""
    if not value:
        return None
    text = value.strip().removeprefix("W/").strip('"')
    if not text.isascii() or not text.isdecimal():
        return None
    return _version(text)


def _version(text: str) -> int:
    """A version number from text; ValueError when it is not one or has over 18 digits."""
    if len(text) > MAX_VERSION_DIGITS:
        raise ValueError(f"a version of {len(text)} characters")
    return int(text)


async def get_bundle(request: web.Request) -> web.Response:
    kind = request.match_info["kind"]
    if kind not in BUNDLE_KINDS:
        raise NotFound(f"no bundle kind {kind!r}; kinds: {sorted(BUNDLE_KINDS)}")
    try:
        after_text = request.query.get("after")
        after = _version(after_text) if after_text is not None else None
        wait = float(request.query.get("wait", "0"))
        if after is None:
            after = _etag_version(request.headers.get("If-None-Match")) or 0
    except ValueError as exc:
        raise BadRequest(
            "after (or If-None-Match) must be a version and wait a number of seconds"
        ) from exc
    if after < 0 or not wait >= 0:
        raise BadRequest("after and wait must not be negative")
    wait = min(wait, request.app[LONG_POLL_MAX])
    bundles = request.app[BUNDLES]
    site_id = request[GATEWAY].site_id
    try:
        version, bundle = await _newer_bundle(bundles, kind, site_id, after, wait)
    except RETRYABLE_ERRORS as exc:
        raise Unavailable("database unavailable; retry") from exc
    if bundle is None or bundle.version <= after:
        headers = {"ETag": f'"{version}"'} if version else {}
        return web.Response(status=304, headers=headers)
    return web.Response(
        body=bundle.data,
        content_type=COSE_TYPE,
        headers={
            "ETag": f'"{bundle.version}"',
            "X-Bundle-Version": str(bundle.version),
            "Cache-Control": "no-cache",
        },
    )


async def _newer_bundle(
    bundles: BundleService, kind: str, site_id: str, after: int, wait: float
) -> tuple[int, SignedBundle | None]:
    """The kind's version and the site's bundle once one is newer than ``after``, waiting up to
    ``wait`` seconds.  A per-site kind's version can move for another site (an emergency
    command elsewhere): then wait on, from that version, instead of answering 304 at once."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    seen = after
    while True:
        version = await bundles.wait_newer(kind, seen, max(0.0, deadline - loop.time()))
        if version <= seen:
            return version, None
        bundle = await bundles.get(kind, site_id)
        if bundle is not None and bundle.version > after:
            return version, bundle
        if loop.time() >= deadline:
            return version, None
        seen = version


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/ingest", post_ingest)
    app.router.add_post("/v1/alerts", post_alerts)
    app.router.add_get("/v1/bundles/{kind}", get_bundle)


__all__ = [
    "BUNDLES",
    "GATEWAY_ID",
    "INGEST_POLICY",
    "LONG_POLL_MAX",
    "MAX_BODY",
    "MAX_BODY_BYTES",
    "add_routes",
]
