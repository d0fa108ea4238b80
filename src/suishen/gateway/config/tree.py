"""The whole gateway config: GatewayConfig, its checks across sections, loading, and the
generated reference (deploy/config/SETTINGS.md)."""

# setting()/optional() wrap dataclasses.field: a Field, not a shared mutable default (RUF009).
# ruff: noqa: RUF009

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from suishen import settings
from suishen.gateway.config.emergency import EmergencySettings, emergency_problems
from suishen.gateway.config.hardware import (
    LaneSettings,
    ModbusGateSettings,
    OsdpBusSettings,
    OsdpGateSettings,
    OsdpIndicatorSettings,
    OsdpScannerSettings,
    ScannerIndicatorSettings,
    SerialScannerSettings,
    TcpScannerSettings,
    UhppoteControllerSettings,
    UhppoteGateSettings,
)
from suishen.gateway.config.hours import HoursSettings, TimeProfileSettings
from suishen.gateway.config.sections import (
    DisplaySettings,
    GatewaySection,
    HttpSettings,
    HubSettings,
    ListsSettings,
    LoggingSettings,
    PrivacySettings,
    SiteSection,
    VerifySettings,
)
from suishen.gateway.journal import JournalConfig
from suishen.gateway.records import Direction, SiteKind
from suishen.settings import SettingError, choices, load_file, load_tree, optional, setting


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class GatewayConfig:
    """Everything one gateway process needs, checked as a whole."""

    gateway: GatewaySection = setting("this gateway")
    site: SiteSection = setting("the site it guards")
    lanes: tuple[LaneSettings, ...] = setting("the lanes ([[lanes]], at least one)")
    uhppote: tuple[UhppoteControllerSettings, ...] = setting(
        "UHPPOTE controllers the lanes use ([[uhppote]])", ()
    )
    osdp: tuple[OsdpBusSettings, ...] = setting("OSDP buses the lanes use ([[osdp]])", ())
    lists: ListsSettings = setting("signed lists")
    verify: VerifySettings = setting("code verification", factory=VerifySettings)
    privacy: PrivacySettings = setting("person keys and identity sealing")
    journal: JournalConfig = setting("the local journal", factory=JournalConfig)
    http: HttpSettings = setting("the local status listener", factory=HttpSettings)
    display: DisplaySettings = setting("the lane display (off by default)", factory=DisplaySettings)
    hub: HubSettings | None = optional("the hub (absent: offline)")
    logging: LoggingSettings = setting("logging", factory=LoggingSettings)
    time_profiles: dict[str, TimeProfileSettings] = setting(
        "named time profiles ([time_profiles.NAME]) for lanes and roster groups", factory=dict
    )
    hours: HoursSettings = setting(
        "the holiday calendar and the roster groups' profiles", factory=HoursSettings
    )
    emergency: EmergencySettings = setting(
        "emergency release: the fire-alarm input, what entries do", factory=EmergencySettings
    )

    def __post_init__(self) -> None:
        problems = list(_cross_check(self))
        if problems:
            raise SettingError(*problems[0], *problems[1:])

    def lane(self, lane_id: str) -> LaneSettings:
        return next(lane for lane in self.lanes if lane.id == lane_id)

    def controller(self, controller_id: str) -> UhppoteControllerSettings:
        return next(c for c in self.uhppote if c.id == controller_id)

    def bus(self, bus_id: str) -> OsdpBusSettings:
        return next(b for b in self.osdp if b.id == bus_id)


_PROFILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")


def _unique(items: Sequence[Any], attr: str, section: str, what: str) -> Iterator[tuple[str, str]]:
    seen: dict[Any, int] = {}
    for i, item in enumerate(items):
        value = getattr(item, attr)
        if value in seen:
            yield (
                f"{section}[{i}].{attr}",
                f"duplicate {what} {value!r} (also {section}[{seen[value]}].{attr})",
            )
        else:
            seen[value] = i


def _cross_check(config: GatewayConfig) -> Iterator[tuple[str, str]]:
    """Checks across sections: unique ids, references that resolve, devices used once."""
    if not config.lanes:
        yield ("lanes", "at least one [[lanes]] is required")
    yield from _unique(config.lanes, "id", "lanes", "lane id")
    yield from _unique(config.uhppote, "id", "uhppote", "controller id")
    yield from _unique(config.uhppote, "serial", "uhppote", "controller serial")
    yield from _unique(config.osdp, "id", "osdp", "bus id")
    yield from _unique(config.osdp, "port", "osdp", "bus port")
    for name in config.time_profiles:
        if not _PROFILE_NAME.fullmatch(name):
            yield (
                f"time_profiles.{name}",
                "a profile name is 1-64 letters, digits, '_', '.' or '-'",
            )
    for group, profile in config.hours.groups.items():
        if profile not in config.time_profiles:
            yield (f"hours.groups.{group}", f"no [time_profiles.{profile}]")
    yield from emergency_problems(
        config.emergency, config.lanes, controllers={c.id for c in config.uhppote}
    )
    display = config.display
    if display.enabled and display.port != 0 and display.port == config.http.port:
        yield ("display.port", f"{display.port} is already the status listener's (http.port)")
    controllers = {c.id for c in config.uhppote}
    buses = {b.id: b for b in config.osdp}
    exclusive: dict[tuple[Any, ...], str] = {}  # a device end only one lane may own
    for i, lane in enumerate(config.lanes):
        at = f"lanes[{i}]"
        if lane.time_profile is not None and lane.time_profile not in config.time_profiles:
            yield (f"{at}.time_profile", f"no [time_profiles.{lane.time_profile}]")
        if lane.zone not in config.site.zones:
            yield (
                f"{at}.zone",
                f"unknown zone {lane.zone!r} (site.zones: {choices(config.site.zones)})",
            )
        if lane.direction in (Direction.CHECKIN, Direction.CHECKOUT) and (
            config.site.kind is not SiteKind.HOTEL
        ):
            yield (f"{at}.direction", f"{lane.direction.value} lanes need site.kind = 'hotel'")
        for role in ("scanner", "gate", "indicator"):
            device = getattr(lane, role)
            if device is None:
                continue
            ref = f"{at}.{role}"
            if hasattr(device, "controller") and device.controller not in controllers:
                yield (
                    f"{ref}.controller",
                    f"no [[uhppote]] controller with id {device.controller!r}",
                )
            if hasattr(device, "bus"):
                bus = buses.get(device.bus)
                reader = None if bus is None else bus.reader(device.address)
                if bus is None:
                    yield (f"{ref}.bus", f"no [[osdp]] bus with id {device.bus!r}")
                elif reader is None:
                    yield (
                        f"{ref}.address",
                        f"bus {bus.id!r} has no reader at address {device.address}",
                    )
                elif role == "gate" and lane.has_passage_sensor and reader.passage_input is None:
                    yield (
                        f"{ref}.address",
                        "the reader has no passage_input; set one or has_passage_sensor = false",
                    )
            key = _exclusive_key(role, device)
            if key is not None:
                if key in exclusive:
                    yield (ref, f"this device is already used by {exclusive[key]}")
                else:
                    exclusive[key] = ref
        if isinstance(lane.indicator, ScannerIndicatorSettings) and not (
            isinstance(lane.scanner, OsdpScannerSettings)
            or (isinstance(lane.scanner, SerialScannerSettings) and lane.scanner.vendor is not None)
        ):
            yield (
                f"{at}.indicator.kind",
                "'scanner' needs an OSDP scanner or a serial scanner with a vendor",
            )


def _exclusive_key(role: str, device: Any) -> tuple[Any, ...] | None:
    if isinstance(device, SerialScannerSettings):
        return ("serial", device.url)
    if isinstance(device, TcpScannerSettings) and device.port != 0:
        return ("tcp", device.mode, device.host, device.port)
    if isinstance(device, ModbusGateSettings):
        return ("modbus", device.url, device.unit, device.coil)
    if isinstance(device, UhppoteGateSettings):
        return ("uhppote-door", device.controller, device.door)
    if isinstance(device, OsdpScannerSettings | OsdpGateSettings | OsdpIndicatorSettings):
        return (role, "osdp", device.bus, device.address)
    return None


def parse_config(data: Mapping[str, Any], *, base_dir: Path | None = None) -> GatewayConfig:
    """A GatewayConfig from already-parsed TOML data; raises ConfigError."""
    return load_tree(GatewayConfig, data, base_dir=base_dir)


def load_config(path: str | os.PathLike[str], *, base_dir: Path | None = None) -> GatewayConfig:
    """Read, parse and validate a gateway config file; raises ConfigError with every problem.

    Relative paths inside the file are taken relative to ``base_dir`` (default: the file's
    directory).
    """
    return load_file(GatewayConfig, path, base_dir=base_dir)


SETTINGS_INTRO = """\
# Gateway settings

<!-- Generated from suishen.gateway.config; do not edit. Regenerate with
     `suishen gateway settings > deploy/config/SETTINGS.md` (a test checks it is current). -->

Every setting of a gateway config file (TOML), with its type, default and meaning.
`suishen gateway check-config FILE` validates a file and names the key path of every problem.

- A setting without a default is **required**; unknown keys are errors.
- Relative paths are taken relative to the config file's directory.
- Secrets (the pepper, OSDP keys, TLS private keys) are never written in the file: settings
  name a file or an environment variable instead.
- `name[]` is an array of tables (`[[name]]`); a device table is chosen by its `kind`.
"""


def settings_markdown(cls: type = GatewayConfig) -> str:
    """Every setting of the tree as Markdown (the text of deploy/config/SETTINGS.md)."""
    return settings.settings_markdown(cls, SETTINGS_INTRO)
