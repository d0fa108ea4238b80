"""The gateway daemon: lanes, journal, state, lists and the local HTTP listener, composed.

`await GatewayService(config).run()` starts everything, rebuilds site state from the journal,
runs one task per lane in a TaskGroup, and serves /health, /status and /metrics. stop() (the
CLI wires SIGTERM/SIGINT to it): stop taking scans, finish those in flight, flush and close
the journal, release the devices, return (exit 0).

With a [hub] section the gateway also syncs (suishen.sync): the uploader sends the journal up
(and alerts on its fast lane) and the bundle fetcher keeps the signed lists current, both over
one mutual-TLS session.  On stop the uploader makes a last best-effort upload bounded by
hub.shutdown_flush_s; the journal keeps whatever did not make it.

A lane whose task fails is logged and restarted after a pause; it never takes the others down.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import ssl
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any

import aiohttp
import structlog
from aiohttp import web
from cryptography import x509

from suishen import __version__
from suishen.drivers.base import DeviceStateChanged
from suishen.gateway.config import ConfigError, ConfigProblem, GatewayConfig, HubSettings
from suishen.gateway.devices import DeviceSet, LaneEvent, build_devices
from suishen.gateway.display import DisplayHub
from suishen.gateway.emergency import Emergency
from suishen.gateway.emergency_http import add_emergency_routes
from suishen.gateway.health import DeviceHealth, ListHealth, assess, is_stale, iso
from suishen.gateway.hours import GatewayHours
from suishen.gateway.http import bound_port, start_http, start_listener
from suishen.gateway.hub_commands import HubEmergency
from suishen.gateway.journal import Journal, JournalError
from suishen.gateway.lane import Lane, LaneMetrics, LaneSetup
from suishen.gateway.lists import Lists
from suishen.gateway.metrics import (
    LATENCY_BUCKETS,
    CallbackCounter,
    CallbackGauge,
    Counter,
    Histogram,
    Registry,
)
from suishen.gateway.pipeline import ScanPipeline
from suishen.gateway.policy import LaneInfo
from suishen.gateway.private import prepare_state
from suishen.gateway.records import ScanDecided
from suishen.gateway.state import SiteState
from suishen.protocol.codes import HC1, SSC1, VerifyOptions
from suishen.protocol.device_state import DeviceState
from suishen.protocol.errors import TrustListError
from suishen.protocol.trust import TrustList
from suishen.sync.bundle_fetcher import BundleFetcher
from suishen.sync.hub_session import hub_session
from suishen.sync.uploader import Uploader

log = structlog.get_logger("suishen.gateway")
_HEALTH_VALUE = {"ok": 0, "degraded": 1, "down": 2}

LANE_RESTART_S = 1.0
DEVICE_STATE_VALUE = {
    DeviceState.CONNECTED: 1,
    DeviceState.CONNECTING: 0,
    DeviceState.DISCONNECTED: 0,
    DeviceState.ERROR: -1,
}


class GatewayService:
    def __init__(self, config: GatewayConfig, *, environ: Mapping[str, str] | None = None) -> None:
        self.config = config
        self._environ = environ
        self.started_at = time.time()
        self.lists = Lists(
            pinned_key=config.lists.read_bundle_key(),
            directory=config.lists.directory,
            # The local trust file is the fallback until a signed trust bundle arrives.
            trust=_read_trust_file(config.lists.trust_file),
            site_id=config.site.id,
        )
        self.state = SiteState(
            site_id=config.site.id,
            kind=config.site.kind,
            daily_reset=config.site.daily_reset,
            timezone=config.site.timezone,
            replay_ttl_s=config.site.rules.replay_ttl_s,
        )
        self.journal = Journal(
            config.journal,
            gateway_id=config.gateway.id,
            site_id=config.site.id,
            hub_public_key=config.privacy.read_hub_seal_key(),
        )
        self.registry = Registry()
        self.lane_metrics = LaneMetrics(
            scans=self.registry.add(
                Counter(
                    "suishen_scans_total",
                    "scans by lane, verdict and reason",
                    ("lane", "verdict", "reason"),
                )
            ),
            latency=self.registry.add(
                Histogram(
                    "suishen_decision_seconds",
                    "frame complete to decision journalled (durable)",
                    LATENCY_BUCKETS,
                )
            ),
            device_errors=self.registry.add(
                Counter(
                    "suishen_device_errors_total",
                    "device errors by lane, device and error",
                    ("lane", "device", "error"),
                )
            ),
            gate_opens=self.registry.add(
                Counter("suishen_gate_opens_total", "open commands a lane's gate took", ("lane",))
            ),
            journal_failures=self.registry.add(
                Counter(
                    "suishen_journal_failures_total",
                    "scans or passages the journal refused (gate kept shut)",
                    ("lane",),
                )
            ),
        )
        self._device_states: dict[str, DeviceStateChanged] = {}
        self.registry.add(
            CallbackGauge(
                "suishen_device_up",
                "1 connected, 0 down or connecting, -1 error",
                lambda: [
                    ((d,), DEVICE_STATE_VALUE[e.state]) for d, e in self._device_states.items()
                ],
                ("device",),
            )
        )
        self.registry.add(
            CallbackGauge(
                "suishen_journal_backlog_rows",
                "journal rows not yet acknowledged by the hub",
                lambda: [((), self.journal.status().unsynced)],
            )
        )
        self.registry.add(
            CallbackGauge(
                "suishen_list_age_seconds",
                "age of each signed list (issued_at to now)",
                lambda: [
                    ((s.kind,), s.age_s)
                    for s in self.lists.status(time.time())
                    if s.age_s is not None
                ],
                ("list",),
            )
        )
        self.registry.add(
            CallbackGauge(
                "suishen_occupancy",
                "people inside now, per zone",
                lambda: [((z,), self.state.count(z)) for z in self.config.site.zones],
                ("zone",),
            )
        )
        self.registry.add(
            CallbackCounter(
                "suishen_display_events_dropped_total",
                "lane display events a slow tablet lost (its queue was full); lanes never wait",
                lambda: [((), self.display.dropped)] if self.display is not None else [],
            )
        )
        self.registry.add(
            CallbackGauge(
                "suishen_build_info",
                "the running version (always 1)",
                lambda: [((__version__,), 1)],
                ("version",),
            )
        )
        self.registry.add(
            CallbackGauge(
                "suishen_health",
                "0 ok, 1 degraded, 2 down (reasons on /health)",
                lambda: [((), _HEALTH_VALUE[self.health()[1]["status"]])],
            )
        )
        self._cert_not_after = _client_cert_expiry(config)
        if self._cert_not_after is not None:
            not_after = self._cert_not_after
            self.registry.add(
                CallbackGauge(
                    "suishen_certificate_expiry_seconds",
                    "seconds until the hub link's client certificate expires",
                    lambda: [(("client",), not_after - time.time())],
                    ("cert",),
                )
            )
        self._add_sync_metrics()
        self.uploader: Uploader | None = None
        self.fetcher: BundleFetcher | None = None
        self.hours: GatewayHours | None = None  # set by _build_lanes (gateway/hours.py)
        self._backlog: tuple[int, float | None] = (0, None)  # (rows, oldest ts), refreshed 1/s
        self.devices: DeviceSet | None = None
        self.lanes: dict[str, Lane] = {}
        self.emergency = Emergency(config, journal=self.journal, state=self.state, lanes=self.lanes)
        self.registry.add(
            CallbackGauge(
                "suishen_emergency_active",
                "1 while the site is in emergency release (exits held open), else 0",
                lambda: [((), int(self.emergency.active))],
            )
        )
        self.http_port: int | None = None
        self.display: DisplayHub | None = None  # the lane display's feed, when [display] is on
        self.display_port: int | None = None
        self._stop = asyncio.Event()
        self._ready = asyncio.Event()
        self._background: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ lifecycle

    async def wait_ready(self) -> None:
        await self._ready.wait()

    def stop(self, signal_name: str | None = None) -> None:
        """Stop the lanes and the sync workers; ``run()`` then returns within the shutdown
        budget (hub.shutdown_flush_s for the last upload, about a second for the rest). Logged
        at warning level, so an operator sees a stop (and its signal) at the default levels."""
        if not self._stop.is_set():
            log.warning("gateway stopping", signal=signal_name)
        self._stop.set()
        for lane in self.lanes.values():
            lane.stop()
        for worker in (self.uploader, self.fetcher):
            if worker is not None:
                worker.stop()

    async def run(self) -> None:
        config = self.config
        structlog.contextvars.bind_contextvars(gateway_id=config.gateway.id, site_id=config.site.id)
        pepper = config.privacy.read_pepper(self._environ)
        prepare_state(config)  # 0700 directories, a 0600 journal (gateway/private.py)
        self._load_lists()
        await self.journal.start()
        try:
            self.emergency.load()
            rebuilt = self.state.replay(
                self.emergency.remember(record for _seq, record in self.journal.replay()),
                sensor_lanes={lane.id for lane in config.lanes if lane.has_passage_sensor},
                now=time.time(),
            )
            log.info("state rebuilt from journal", records=rebuilt, inside=self.state.count())
            self._backlog = await self.journal.backlog()
            session = self._start_sync()
            self.devices = build_devices(
                config,
                environ=self._environ,
                on_event=self._on_lane_event,
            )
            await self.devices.start()
            self._build_lanes(pepper)
            # A restart during an emergency holds the exits open before any scan is taken.
            await self.emergency.apply_to_lanes()
            await self.emergency.start_alarm(
                self._on_alarm_device, uhppote_links=self.devices.uhppote_links
            )
            runner = await self._start_status_http()
            display_runner = await self._start_display()
            log.info(
                "gateway up",
                lanes=len(self.lanes),
                http_port=self.http_port,
                display_port=self.display_port,
            )
            _freeze_startup_heap()
            try:
                self._ready.set()
                async with asyncio.TaskGroup() as group:
                    for lane in self.lanes.values():
                        group.create_task(self._supervise(lane))
                    group.create_task(self._housekeeping())
                    if self.uploader is not None:
                        group.create_task(self._keep_running("uploader", self.uploader.run))
                    if self.fetcher is not None:
                        group.create_task(self._keep_running("bundle fetcher", self.fetcher.run))
            finally:
                gc.unfreeze()  # in-process callers (tests) get their collector back as it was
                if self.display is not None:
                    self.display.close()  # ends every event stream, so cleanup is prompt
                if display_runner is not None:
                    await display_runner.cleanup()
                await runner.cleanup()
                await self.emergency.aclose()
                for lane in self.lanes.values():
                    await lane.drain_indicators()
                await self.devices.aclose()
                await self._close_sync(session)
        finally:
            if self._background:
                await asyncio.gather(*self._background, return_exceptions=True)
            await self.journal.close()
            log.info("gateway stopped", journal=self.journal.status().last_seq)

    def _start_sync(self) -> aiohttp.ClientSession | None:
        """The uploader and the bundle fetcher over one hub session (None: no [hub])."""
        hub = self.config.hub
        if hub is None:
            return None
        session = _open_hub_session(hub)
        gateway_id = self.config.gateway.id
        self.uploader = Uploader(self.journal, session, hub, gateway_id=gateway_id)
        self.fetcher = BundleFetcher(
            self.lists, session, hub, gateway_id=gateway_id, **self._fetched_kinds()
        )
        return session

    async def _start_status_http(self) -> web.AppRunner:
        """/health, /status, /metrics; a port that cannot be bound is a ConfigError naming
        http.port (one line for the operator, not a traceback)."""
        host, port = self.config.http.host, self.config.http.port
        try:
            runner = await start_http(
                self, host, port, extend=lambda app: add_emergency_routes(app, self.emergency)
            )
        except OSError as exc:
            problem = f"cannot listen on {host}:{port}: {exc.strerror}"
            raise ConfigError([ConfigProblem("http.port", problem)]) from exc
        self.http_port = bound_port(runner)
        return runner

    async def _start_display(self) -> web.AppRunner | None:
        """The lane display's listener, when enabled (it needs the 'web' extra: imported here
        only, so a gateway without it runs while the display is off)."""
        settings = self.config.display
        if not settings.enabled or self.display is None:
            return None
        from suishen.gateway.display_http import make_display_app  # noqa: PLC0415 - lazy extra

        app = make_display_app(
            self.display, clear_after_s=settings.clear_after_s, speak=settings.speak
        )
        runner = await start_listener(app, settings.host, settings.port)
        self.display_port = bound_port(runner)
        return runner

    async def _close_sync(self, session: aiohttp.ClientSession | None) -> None:
        """The last best-effort upload (bounded), then close the hub session."""
        if self.uploader is not None and self.config.hub is not None:
            left = await self.uploader.flush(self.config.hub.shutdown_flush_s)
            log.info("final upload", unsynced=left)
        if session is not None:
            await session.close()

    async def _keep_running(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        """Run a sync worker; a crash is logged and it is restarted, the lanes go on."""
        while not self._stop.is_set():
            try:
                await run()
            except Exception:
                log.exception("sync worker crashed; restarting", worker=name)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(LANE_RESTART_S):
                        await self._stop.wait()
            else:
                return

    def _load_lists(self) -> None:
        problems = self.lists.load()
        if "trust" in problems and self.config.lists.trust_file is not None:
            problems.pop("trust")
            log.warning("trust list from the local trust file (no signed trust bundle yet)")
        for kind, problem in problems.items():
            log.warning("list not loaded", list=kind, problem=problem)

    def _build_lanes(self, pepper: bytes) -> None:
        config, devices = self.config, self.devices
        assert devices is not None
        options = VerifyOptions(
            formats=frozenset({SSC1, HC1}),
            clock_skew_s=config.verify.clock_skew_s,
            max_lifetime_s={SSC1: config.verify.max_lifetime_s, HC1: None},
        )
        self.hours = GatewayHours.from_config(config)
        hours = self.hours.snapshot(self.lists)
        if config.display.enabled:
            self.display = DisplayHub(
                frozenset(lane.id for lane in config.lanes),
                queue_size=config.display.queue_events,
            )
        display = self.display

        def on_decided(record: ScanDecided, seq: int) -> None:
            self.emergency.note(record, seq)  # the muster list's masked names
            if display is not None:
                display.publish(record, seq)

        for lane in config.lanes:
            info = LaneInfo(
                site_id=config.site.id,
                kind=config.site.kind,
                lane_id=lane.id,
                direction=lane.direction,
                zone=lane.zone,
                hours=hours.lane(lane.time_profile),
                group_hours=hours.groups,
            )
            pipeline = ScanPipeline(
                lane=info,
                rules=config.site.rules,
                state=self.state,
                lists=self.lists,
                pepper=pepper,
                verify_options=options,
                timezone=config.site.timezone,
            )
            self.lanes[lane.id] = Lane(
                setup=LaneSetup(
                    lane_id=lane.id,
                    has_passage_sensor=lane.has_passage_sensor,
                    passage_timeout_s=lane.passage_timeout_s,
                    open_pulse_ms=lane.open_pulse_ms,
                    scan_max_age_s=lane.scan_max_age_s,
                    discard_interval_s=lane.discard_interval_s,
                ),
                devices=devices[lane.id],
                pipeline=pipeline,
                state=self.state,
                journal=self.journal,
                metrics=self.lane_metrics,
                on_decided=on_decided,
            )

        loop = asyncio.get_running_loop()

        def changed(kind: str) -> None:  # in the installing thread: rebuild on the loop's
            if kind in ("roster", "calendar"):
                loop.call_soon_threadsafe(self._rehour)

        self.lists.subscribe(changed)

    def _rehour(self) -> None:
        """A roster or calendar bundle came in: the lanes' hours follow (gateway/hours.py)."""
        assert self.hours is not None
        profiles = {lane.id: lane.time_profile for lane in self.config.lanes}
        lanes = [lane.pipeline for lane in self.lanes.values()]
        self.hours.apply(self.lists, lanes, profiles)

    def _fetched_kinds(self) -> dict[str, Any]:
        """The kinds the fetcher polls; the hub's emergency command is applied to
        ``self.emergency`` before it is kept (gateway/hub_commands.py)."""
        return {
            "kinds": ("trust", "watchlist", "roster", "calendar", "emergency"),
            "installers": {"emergency": HubEmergency(self.lists, self.emergency).install},
        }

    async def _supervise(self, lane: Lane) -> None:
        """Run a lane; a crash is logged and the lane restarted, the others go on."""
        while not self._stop.is_set():
            try:
                await lane.run()
            except asyncio.CancelledError:
                if self._stop.is_set():
                    return
                raise
            except Exception:
                log.exception("lane crashed; restarting", lane_id=lane.setup.lane_id)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(LANE_RESTART_S):
                        await self._stop.wait()
            else:
                return

    async def _housekeeping(self) -> None:
        while not self._stop.is_set():
            self.state.advance(time.time())
            with contextlib.suppress(JournalError):
                self._backlog = await self.journal.backlog()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self._stop.wait()

    def _on_lane_event(self, lane_id: str, event: LaneEvent) -> None:
        """A lane's side channel (its lane id attached by the device factory)."""
        if isinstance(event, DeviceStateChanged):
            self._on_device(lane_id, event)
            return
        lane = self.lanes.get(lane_id)
        if lane is not None:
            lane.discarded(event)

    def _on_device(self, lane_id: str, event: DeviceStateChanged) -> None:
        """Remember a device's state for /status and journal the change under the lane it
        serves (it syncs up like every record, so the centre sees when a door's scanner or
        gate was down)."""
        self._device_states[event.device_id] = event
        if self._stop.is_set():
            return
        lane = self.lanes.get(lane_id)
        gate = None if lane is None else lane.devices.gate
        if (
            event.state is DeviceState.CONNECTED
            and lane is not None
            and lane.emergency
            and gate is not None
            and gate.device_id == event.device_id
        ):
            # A gate back during an emergency: hold it again (drivers that keep the hold
            # themselves just write it once more).
            self._spawn(lane.hold(released=lane.emergency == "released"))
        self._spawn(self._journal_device(lane_id, event))

    def _on_alarm_device(self, event: DeviceStateChanged) -> None:
        """The fire-alarm input's state: /status, the device gauge and the journal."""
        self._device_states[event.device_id] = event
        if not self._stop.is_set():
            self._spawn(self._journal_device(None, event))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _journal_device(self, lane_id: str | None, event: DeviceStateChanged) -> None:
        try:
            await self.journal.append_device(
                ts=event.at,
                lane_id=lane_id,
                device_id=event.device_id,
                state=event.state.value,
                detail=event.detail[:200],
            )
        except JournalError as exc:
            log.warning("device state not journalled", device_id=event.device_id, error=str(exc))

    # ------------------------------------------------------------------ StatusSource

    def health(self) -> tuple[bool, dict[str, Any]]:
        journal = self.journal.status()
        now = time.time()
        report = assess(
            ready=self._ready.is_set(),
            stopping=self._stop.is_set(),
            journal_full=journal.full,
            journal_alarm=journal.alarm,
            devices=self._device_health(),
            lists=[
                ListHealth(
                    kind=s.kind,
                    version=s.version,
                    entries=s.entries,
                    age_s=s.age_s,
                    problem=s.problem,
                )
                for s in self.lists.status(now)
            ],
            stale_after_s=self.config.lists.stale_after_s,
            upload=self.uploader.stats.as_dict() if self.uploader is not None else None,
            cert_expires_in_s=None if self._cert_not_after is None else self._cert_not_after - now,
        )
        return report.serving, {
            "status": report.status,
            "reasons": list(report.reasons),
            "journal_full": journal.full,
            "journal_alarm": journal.alarm,
        }

    def _device_health(self) -> list[DeviceHealth]:
        if self.devices is None:
            return []
        found = []
        for lane_id in self.lanes:
            for device in self.devices[lane_id].devices():
                event = self._device_states.get(device.device_id)
                found.append(
                    DeviceHealth(
                        lane_id=lane_id,
                        device_id=device.device_id,
                        state=(event.state if event else DeviceState.CONNECTING).value,
                        since=event.at if event else None,
                    )
                )
        return found

    def status(self) -> dict[str, Any]:
        now = time.time()
        journal = self.journal.status()
        return {
            "gateway_id": self.config.gateway.id,
            "version": __version__,
            "site": {"id": self.config.site.id, "kind": self.config.site.kind.value},
            "started_at": iso(self.started_at),
            "uptime_s": round(now - self.started_at, 3),
            "lanes": [
                {
                    "id": lane_id,
                    "scans": lane.counters.scans,
                    "allowed": lane.counters.allowed,
                    "denied": lane.counters.denied,
                    "failed_closed": lane.counters.failed_closed,
                    "gate_opens": lane.counters.gate_opens,
                    "last_scan_at": lane.counters.last_scan_at,
                    "last_scan_at_iso": iso(lane.counters.last_scan_at),
                    "devices": {
                        device.device_id: self._device_state(device.device_id)
                        for device in self.devices[lane_id].devices()
                    }
                    if self.devices is not None
                    else {},
                }
                for lane_id, lane in self.lanes.items()
            ],
            "lists": [
                {
                    "kind": s.kind,
                    "version": s.version,
                    "issued_at": s.issued_at,
                    "issued_at_iso": iso(s.issued_at),
                    "age_s": s.age_s,
                    "entries": s.entries,
                    "problem": s.problem,
                    "published": s.version > 0,
                    "stale": is_stale(
                        ListHealth(
                            kind=s.kind,
                            version=s.version,
                            entries=s.entries,
                            age_s=s.age_s,
                            problem=s.problem,
                        ),
                        self.config.lists.stale_after_s,
                    ),
                }
                for s in self.lists.status(now)
            ],
            "journal": {
                "last_seq": journal.last_seq,
                "synced_seq": journal.synced_seq,
                "backlog": journal.unsynced,
                "backlog_oldest_age_s": self._backlog_age(now),
                "alarm": journal.alarm,
                "full": journal.full,
            },
            "sync": self._sync_status(),
            "hours": None if self.hours is None else self.hours.snapshot(self.lists).status(),
            "occupancy": {zone: self.state.count(zone) for zone in self.config.site.zones},
            "emergency": self.emergency.status(),
        }

    def _backlog_age(self, now: float) -> float | None:
        oldest = self._backlog[1]
        return None if oldest is None else round(max(0.0, now - oldest), 3)

    def _sync_status(self) -> dict[str, Any] | None:
        if self.config.hub is None:
            return None
        return {
            "hub": self.config.hub.url,
            "upload": self.uploader.stats.as_dict() if self.uploader is not None else None,
            "lists": {kind: stats.as_dict() for kind, stats in self.fetcher.stats.items()}
            if self.fetcher is not None
            else None,
        }

    def _add_sync_metrics(self) -> None:
        add = self.registry.add

        def upload(read: Callable[[Any], float | None]) -> Callable[[], list[Any]]:
            def samples() -> list[Any]:
                if self.uploader is None:
                    return []
                value = read(self.uploader.stats)
                return [] if value is None else [((), value)]

            return samples

        def per_list(field: str) -> Callable[[], list[Any]]:
            def samples() -> list[Any]:
                if self.fetcher is None:
                    return []
                return [((k,), getattr(s, field)) for k, s in self.fetcher.stats.items()]

            return samples

        add(
            CallbackGauge(
                "suishen_journal_backlog_oldest_seconds",
                "age of the oldest journal row not yet acknowledged by the hub",
                lambda: [((), age)] if (age := self._backlog_age(time.time())) is not None else [],
            )
        )
        upload_metrics: tuple[tuple[type[Any], str, str, Callable[[Any], float | None]], ...] = (
            (CallbackCounter, "suishen_sync_rows_uploaded_total",
             "journal rows the hub acknowledged", lambda s: s.rows_uploaded),
            (CallbackCounter, "suishen_sync_rows_rejected_total",
             "journal rows the hub refused (quarantined with the reason)",
             lambda s: s.rows_rejected),
            (CallbackCounter, "suishen_sync_upload_failures_total",
             "upload attempts that failed (unreachable, 5xx, 429, 403, ...)", lambda s: s.failures),
            (CallbackCounter, "suishen_sync_alerts_sent_total",
             "alert rows delivered on the fast lane", lambda s: s.alerts_sent),
            (CallbackGauge, "suishen_sync_consecutive_failures",
             "failed upload attempts since the last success", lambda s: s.consecutive_failures),
            (CallbackGauge, "suishen_sync_last_success_timestamp_seconds",
             "wall clock of the last successful upload", lambda s: s.last_success_at),
        )  # fmt: skip
        for kind, name, help_text, read in upload_metrics:
            add(kind(name, help_text, upload(read)))
        add(
            CallbackGauge(
                "suishen_sync_hub_up",
                "1 when the last upload reached the hub, 0 when not",
                upload(lambda s: None if s.hub_up is None else int(s.hub_up and not s.forbidden)),
            )
        )
        add(
            CallbackCounter(
                "suishen_bundles_installed_total",
                "signed bundles accepted from the hub",
                per_list("installed"),
                ("list",),
            )
        )
        add(
            CallbackCounter(
                "suishen_bundles_refused_total",
                "bundles from the hub refused (signature, version, kind, body)",
                per_list("refused"),
                ("list",),
            )
        )

    def _device_state(self, device_id: str) -> dict[str, Any]:
        event = self._device_states.get(device_id)
        if event is None:
            return {"state": DeviceState.CONNECTING.value}
        return {
            "state": event.state.value,
            "since": event.at,
            "since_iso": iso(event.at),
            "detail": event.detail,
        }

    def metrics_text(self) -> str:
        return self.registry.render()


def _read_trust_file(path: Path | None) -> TrustList | None:
    """The local trust file, or None; ConfigError naming lists.trust_file when unusable."""
    if path is None:
        return None
    try:
        return TrustList.from_json(json.loads(path.read_text(encoding="utf-8")))
    except OSError as exc:
        problem = f"cannot read {path}: {exc.strerror}"
    except (ValueError, TrustListError) as exc:
        problem = f"{path} is not a trust file: {exc}"
    raise ConfigError([ConfigProblem("lists.trust_file", problem)])


def _open_hub_session(hub: HubSettings) -> aiohttp.ClientSession:
    """The mutual-TLS session; ConfigError naming the hub setting when its files are unusable."""
    try:
        return hub_session(hub.ca, hub.client_cert, hub.client_key)
    except (OSError, ssl.SSLError) as exc:
        why = getattr(exc, "strerror", None) or str(exc)
        files = f"{hub.ca}, {hub.client_cert}, {hub.client_key}"
        raise ConfigError([ConfigProblem("hub.client_key", f"cannot load {files}: {why}")]) from exc


def _client_cert_expiry(config: GatewayConfig) -> float | None:
    """POSIX time the hub link's client certificate expires (None: no link, or unreadable:
    preflight names that)."""
    if config.hub is None:
        return None
    try:
        cert = x509.load_pem_x509_certificate(config.hub.client_cert.read_bytes())
    except (OSError, ValueError):
        return None
    return cert.not_valid_after_utc.timestamp()


def _freeze_startup_heap() -> None:
    """Collect once, then move every object alive after start-up (config, lists, drivers,
    aiohttp, imported modules: ~10^5 objects) out of the cyclic collector's sight.

    Without this, each full (generation 2) collection under load traverses that heap while
    the lanes wait: ~26 ms measured at 32 lanes, the tail of scan -> open latency.  With it a
    full collection sees only what was made since (~1.5 ms).  Frozen objects are still freed
    by reference counting; only cycles among them would outlive the process's run.
    """
    gc.collect()
    gc.freeze()
