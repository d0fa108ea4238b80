"""The hub process: its aiohttp apps and their lifecycle (DESIGN §6, §7, §9.9).

``gateway_app(...)`` is the gateway listener's application (routes: central/gateway_api.py).
Typed state in ``web.AppKey``s; paired setup/teardown in ``app.cleanup_ctx``, in order:

1. the database (``db.database_ctx``: embedded pgserver or DSN, migrations, pool) -- or a
   pool the caller owns (tests, benchmarks);
2. partition upkeep (``partitions.maintain``) once at start and every
   ``retention.maintenance_interval_s`` (hourly);
3. the gateway registry (central/store/gateways.py: each gateway's pinned certificate and enabled
   flag, cached, invalidated by LISTEN/NOTIFY so a revocation holds on the next request);
4. the bundle service (LISTEN/NOTIFY on bundle versions, signed-bundle cache); on shutdown it
   wakes every long-poller so they answer at once;
5. given ``alerts`` (``run_hub`` passes the config's ``[alerts]``): the configured deadlines
   written to the database, the webhook sender and the reminder pass (central/alerts/sender.py).

``run_hub(config, ready_file=...)`` serves it on ``gateway_listener.host:port`` with the
mutual-TLS context of ``sync.pki.hub_ssl_context`` and stops cleanly on SIGTERM / SIGINT.

Readiness, for supervisors and tests that start ``suishen hub run`` as a subprocess: once the
listener accepts connections the hub logs ``hub_ready`` (with the bound port) and, given
``--ready-file PATH``, writes PATH atomically with ``{"pid", "host", "port"}`` as JSON; the file
is removed at a clean stop; with the web listener enabled (``[web_listener]``, loopback by
default) the file also holds ``web_port``, and the log line ``web_ready`` its port.

Every endpoint of the gateway listener needs a client certificate: there is no
unauthenticated health check on this listener by design.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import os
import signal
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
import structlog
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ed25519

from suishen.central import partitions
from suishen.central.alerts.sender import alerts_ctx
from suishen.central.alerts.settings import AlertsSection
from suishen.central.bundle_service import BundleService
from suishen.central.config import HubConfig
from suishen.central.db import (
    DB_POOL,
    DatabaseSettings,
    database_ctx,
    open_database,
    resolve_password,
)
from suishen.central.errors import error_middleware
from suishen.central.gateway_api import (
    BUNDLES,
    GATEWAYS,
    INGEST_POLICY,
    LONG_POLL_MAX,
    MAX_BODY,
    add_routes,
    bind_gateway,
)
from suishen.central.gateway_registry import GatewayRegistry
from suishen.central.ingest import RETRYABLE_ERRORS
from suishen.central.keys import load_bundle_key
from suishen.central.listener import BODY_TIMEOUT, ConnectionGuard, GuardedSite, ListenerLimits
from suishen.sync.pki import PkiLayout, hub_ssl_context_for
from suishen.sync.wire import MAX_BODY_BYTES

SHUTDOWN_TIMEOUT_S = 5.0
LIMITS: web.AppKey[ListenerLimits] = web.AppKey("listener_limits", ListenerLimits)

log = structlog.get_logger("suishen.central.app")


def _pool_ctx(pool: asyncpg.Pool) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        app[DB_POOL] = pool
        yield

    return ctx


def _maintenance_ctx(
    policy: partitions.PartitionPolicy, interval_s: float
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def upkeep(pool: asyncpg.Pool) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                created, dropped = await partitions.maintain(
                    pool, now=dt.datetime.now(dt.UTC), policy=policy
                )
                log.info("partitions_maintained", created=len(created), dropped=len(dropped))
            except RETRYABLE_ERRORS as exc:  # try again at the next interval
                log.warning("partitions_maintenance_failed", error=type(exc).__name__)

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        pool = app[DB_POOL]
        created, dropped = await partitions.maintain(
            pool, now=dt.datetime.now(dt.UTC), policy=policy
        )
        log.info("partitions_maintained", created=len(created), dropped=len(dropped))
        task = asyncio.create_task(upkeep(pool), name="partition-upkeep")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return ctx


def _bundles_ctx(
    key: ed25519.Ed25519PrivateKey, poll_s: float
) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        service = BundleService(app[DB_POOL], key, poll_s=poll_s)
        await service.start()
        app[BUNDLES] = service
        yield
        await service.close()

    return ctx


def _gateways_ctx(ttl_s: float) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        registry = GatewayRegistry(app[DB_POOL], ttl_s=ttl_s)
        await registry.start()
        app[GATEWAYS] = registry
        yield
        await registry.close()

    return ctx


async def _wake_long_polls(app: web.Application) -> None:
    # on_shutdown runs before handlers are awaited: long-polls answer 304 now, not in 30 s.
    if BUNDLES in app:
        await app[BUNDLES].close()


def gateway_app(
    *,
    bundle_key: ed25519.Ed25519PrivateKey,
    database: DatabaseSettings | None = None,
    pool: asyncpg.Pool | None = None,
    policy: partitions.PartitionPolicy | None = None,
    maintenance_interval_s: float = 3600.0,
    max_body_bytes: int = MAX_BODY_BYTES,
    long_poll_max_s: float = 30.0,
    bundle_poll_s: float = 5.0,
    gateway_cache_ttl_s: float = 30.0,
    limits: ListenerLimits | None = None,
    alerts: AlertsSection | None = None,
) -> web.Application:
    """The gateway listener's app, on the configured database or on ``pool`` (not closed)."""
    if (database is None) == (pool is None):
        raise ValueError("give exactly one of database and pool")
    # aiohttp refuses larger bodies itself (413) before the handler reads them.
    app = web.Application(
        middlewares=[error_middleware, bind_gateway], client_max_size=max_body_bytes
    )
    app[MAX_BODY] = max_body_bytes
    app[LONG_POLL_MAX] = float(long_poll_max_s)
    app[LIMITS] = limits or ListenerLimits()
    app[BODY_TIMEOUT] = app[LIMITS].body_timeout_s
    app[INGEST_POLICY] = policy or partitions.PartitionPolicy()
    if database is not None:
        app.cleanup_ctx.append(database_ctx(database))
    else:
        assert pool is not None
        app.cleanup_ctx.append(_pool_ctx(pool))
    app.cleanup_ctx.append(
        _maintenance_ctx(policy or partitions.PartitionPolicy(), maintenance_interval_s)
    )
    app.cleanup_ctx.append(_gateways_ctx(gateway_cache_ttl_s))
    app.cleanup_ctx.append(_bundles_ctx(bundle_key, bundle_poll_s))
    if alerts is not None:  # the webhook sender and reminders (central/alerts/sender.py)
        app.cleanup_ctx.append(alerts_ctx(alerts))
    app.on_shutdown.append(_wake_long_polls)
    add_routes(app)
    return app


async def serve(
    app: web.Application, host: str, port: int, ssl_context: ssl.SSLContext
) -> tuple[web.AppRunner, int]:
    """Start ``app`` on host:port with TLS; return the runner and the bound port.

    The app's ListenerLimits (``LIMITS``) set the TLS handshake and request-head timeout (as
    aiohttp's keepalive_timeout) and the per-gateway connection cap (central/listener.py)."""
    limits = app.get(LIMITS) or ListenerLimits()
    runner = web.AppRunner(
        app,
        shutdown_timeout=SHUTDOWN_TIMEOUT_S,
        access_log=None,
        keepalive_timeout=limits.header_timeout_s,
    )
    await runner.setup()
    assert runner.server is not None
    ConnectionGuard(limits.max_connections_per_gateway).install(runner.server)
    site = GuardedSite(
        runner,
        host,
        port,
        ssl_context=ssl_context,
        reuse_address=True,
        ssl_handshake_timeout=limits.header_timeout_s,
    )
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound: int = runner.addresses[0][1]
    return runner, bound


def _write_ready(path: Path, ready: dict[str, object]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), **ready}), encoding="utf-8")
    tmp.replace(path)


def database_settings(config: HubConfig) -> DatabaseSettings:
    """The database the config names; a DSN's password from database.password_file or the
    environment variable database.password_env (raises DatabaseError for an unsafe file)."""
    db = config.database
    password = None
    if db.dsn:
        password = resolve_password(file=db.password_file, env=db.password_env)
    return DatabaseSettings(
        dsn=db.dsn,
        password=password,
        state_dir=None if db.dsn else config.hub.state_dir,
        min_size=min(db.min_size, db.max_size),
        max_size=db.max_size,
    )


async def serve_web(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Start the web UI's ``app`` on host:port (plain HTTP; see config [web_listener])."""
    runner = web.AppRunner(app, shutdown_timeout=SHUTDOWN_TIMEOUT_S, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound: int = runner.addresses[0][1]
    return runner, bound


async def run_hub(config: HubConfig, *, ready_file: Path | None = None) -> None:
    """Run the hub until SIGTERM or SIGINT (see the module docstring).

    The database is opened once and its pool shared by the gateway listener and, when
    ``web_listener.enabled``, the web listener (central/web/app.py)."""
    from suishen.central.web.app import web_app  # noqa: PLC0415 - the web extra, lazily

    listener = config.gateway_listener
    key = load_bundle_key(config.hub.state_dir)
    ssl_context = hub_ssl_context_for(PkiLayout(listener.pki_dir))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with open_database(database_settings(config)) as pool:
            app = gateway_app(
                bundle_key=key,
                pool=pool,
                policy=partitions.PartitionPolicy(
                    days_ahead=config.retention.days_ahead,
                    retention_days=config.retention.days,
                    clock_skew_s=config.retention.clock_skew_s,
                ),
                maintenance_interval_s=config.retention.maintenance_interval_s,
                max_body_bytes=listener.max_body_bytes,
                long_poll_max_s=listener.long_poll_max_s,
                limits=ListenerLimits(
                    header_timeout_s=listener.header_timeout_s,
                    body_timeout_s=listener.body_timeout_s,
                    max_connections_per_gateway=listener.max_connections_per_gateway,
                ),
                alerts=config.alerts,
            )
            await _serve_until(stop, config, pool, app, ssl_context, ready_file, web_app)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
    log.info("hub_stopped")


async def _serve_until(  # noqa: PLR0917 - one private call site, in order
    stop: asyncio.Event,
    config: HubConfig,
    pool: asyncpg.Pool,
    app: web.Application,
    ssl_context: ssl.SSLContext,
    ready_file: Path | None,
    make_web_app: Callable[..., web.Application],
) -> None:
    listener, web_listener = config.gateway_listener, config.web_listener
    runner, port = await serve(app, listener.host, listener.port, ssl_context)
    web_runner: web.AppRunner | None = None
    try:
        ready = {"host": listener.host, "port": port}
        if web_listener.enabled:
            web_runner, web_port = await serve_web(
                make_web_app(pool=pool, config=config), web_listener.host, web_listener.port
            )
            ready["web_port"] = web_port
            log.info("web_ready", host=web_listener.host, port=web_port)
        if ready_file is not None:
            _write_ready(ready_file, ready)
        log.info("hub_ready", host=listener.host, port=port, pid=os.getpid())
        await stop.wait()
        log.info("hub_stopping")
    finally:
        if web_runner is not None:
            await web_runner.cleanup()
        await runner.cleanup()
        if ready_file is not None:
            await asyncio.to_thread(ready_file.unlink, missing_ok=True)
