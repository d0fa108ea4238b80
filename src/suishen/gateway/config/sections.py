"""The gateway's own sections: the gateway, its site, signed lists, verification, privacy,
the status listener, the lane display, the hub link and logging."""

# setting()/optional() wrap dataclasses.field: a Field, not a shared mutable default (RUF009).
# ruff: noqa: RUF009

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import enum
import zoneinfo
from collections.abc import Mapping
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519, x25519

from suishen.gateway.config.checks import (
    as_config_error,
    b64_key,
    check_env_name,
    check_id,
    ed25519_key,
    one_of,
    read_key_file,
    read_secret,
    x25519_key,
)
from suishen.gateway.policy import SiteRules
from suishen.gateway.records import SiteKind
from suishen.settings import ConfigError, ConfigProblem, SettingError, optional, setting


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class GatewaySection:
    """This gateway."""

    id: str = setting("this gateway's id, unique in the deployment (journal records carry it)")

    def __post_init__(self) -> None:
        check_id("id", self.id)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SiteSection:
    """The site this gateway guards."""

    id: str = setting("the site's id, as the hub knows it")
    kind: SiteKind = setting("the kind of site; it selects the site's rules")
    name: str = setting("a display name for the site", "")
    zones: tuple[str, ...] = setting(
        "the zones inside the site (occupancy is counted per zone); lanes name one",
        ("main",),
    )
    daily_reset: dt.time | None = optional(
        "local time at which occupancy and anti-passback reset each day (absent: never); "
        "hotel stays are never reset"
    )
    timezone: str = setting("the site's IANA time zone (daily reset, reports)", "Asia/Shanghai")
    rules: SiteRules = setting(
        "site policy: accepted formats, capacity and which rules apply how", factory=SiteRules
    )

    def __post_init__(self) -> None:
        check_id("id", self.id)
        if not self.zones:
            raise SettingError("zones", "must name at least one zone")
        for i, zone in enumerate(self.zones):
            check_id(f"zones[{i}]", zone)
        if len(set(self.zones)) != len(self.zones):
            raise SettingError("zones", "zone names must be unique")
        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise SettingError("timezone", f"unknown time zone {self.timezone!r}") from None


# ----- lists, verification, privacy, services


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ListsSettings:
    """The signed lists (trust list, watchlist, worker roster) the gateway decides on."""

    directory: Path = setting(
        "directory of the last-known-good signed bundle files", Path("state/lists")
    )
    bundle_key: str | None = optional(
        "the hub's bundle-signing Ed25519 public key, base64 DER SubjectPublicKeyInfo (pinned)"
    )
    bundle_key_file: Path | None = optional("or: a file holding that key (PEM, base64 or DER)")
    trust_file: Path | None = optional(
        "a trust-list file used until the first signed trust bundle arrives (absent: none)"
    )
    stale_after_s: int = setting(
        "lists older than this are reported stale on /status", 86400, ge=60
    )

    def __post_init__(self) -> None:
        one_of(self, "bundle_key", "bundle_key_file")
        if self.bundle_key is not None:
            ed25519_key(b64_key("bundle_key", self.bundle_key), "bundle_key")

    def read_bundle_key(self) -> ed25519.Ed25519PublicKey:
        """The pinned bundle key (reads bundle_key_file); raises ConfigError."""
        if self.bundle_key is not None:
            return ed25519_key(base64.b64decode(self.bundle_key), "bundle_key")
        assert self.bundle_key_file is not None
        der = read_key_file(self.bundle_key_file, "lists.bundle_key_file")
        try:
            return ed25519_key(der, "bundle_key_file")
        except SettingError as exc:
            raise as_config_error(exc, "lists") from None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class VerifySettings:
    """Code verification (the formats a site accepts are a rule: site.rules.formats)."""

    clock_skew_s: int = setting("tolerated clock skew on a code's iat and exp", 60, ge=0, le=600)
    max_lifetime_s: int = setting("longest accepted code lifetime (exp - iat)", 300, ge=1)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PrivacySettings:
    """Person keys and identity sealing (DESIGN §4). The pepper is never written here."""

    pepper_file: Path | None = optional("file holding the deployment pepper (person keys)")
    pepper_env: str | None = optional("or: environment variable holding the pepper")
    hub_seal_key: str | None = optional(
        "the hub's X25519 sealing public key, base64 (32 raw bytes or DER SubjectPublicKeyInfo)"
    )
    hub_seal_key_file: Path | None = optional("or: a file holding that key")

    def __post_init__(self) -> None:
        one_of(self, "pepper_file", "pepper_env")
        check_env_name("pepper_env", self.pepper_env)
        one_of(self, "hub_seal_key", "hub_seal_key_file")
        if self.hub_seal_key is not None:
            x25519_key(b64_key("hub_seal_key", self.hub_seal_key), "hub_seal_key")

    def read_pepper(self, environ: Mapping[str, str] | None = None) -> bytes:
        """The pepper (at least 16 bytes); raises ConfigError naming the setting."""
        pepper = read_secret(
            self.pepper_file, self.pepper_env, key="privacy.pepper", environ=environ
        )
        if len(pepper) < 16:
            raise ConfigError([ConfigProblem("privacy.pepper", "must be at least 16 bytes")])
        return pepper

    def read_hub_seal_key(self) -> x25519.X25519PublicKey:
        if self.hub_seal_key is not None:
            return x25519_key(base64.b64decode(self.hub_seal_key), "hub_seal_key")
        assert self.hub_seal_key_file is not None
        data = read_key_file(self.hub_seal_key_file, "privacy.hub_seal_key_file")
        try:
            return x25519_key(data, "hub_seal_key_file")
        except SettingError as exc:
            raise as_config_error(exc, "privacy") from None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class HttpSettings:
    """The local status listener: /health, /status, /metrics."""

    host: str = setting(
        "address to listen on (keep it loopback unless a proxy fronts it)", "127.0.0.1"
    )
    port: int = setting("port to listen on (0: any free port)", 9180, ge=0, le=65535)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class DisplaySettings:
    """The lane display: a full-screen page per lane for a tablet at the door, showing and
    speaking each verdict (GET /display/{lane_id}); its own listener, off by default. Needs the
    'web' extra (aiohttp-sse) only when enabled."""

    enabled: bool = setting("serve the lane display pages and their event streams", False)
    host: str = setting(
        "address the display listener binds (the tablets' network; loopback by default)",
        "127.0.0.1",
    )
    port: int = setting("port of the display listener (0: any free port)", 9181, ge=0, le=65535)
    clear_after_s: float = setting(
        "seconds a verdict stays on the screen before the page returns to idle", 5.0, ge=1, le=60
    )
    speak: bool = setting("speak each verdict in Chinese (the browser's speech synthesis)", True)
    queue_events: int = setting(
        "events held per connected tablet; a slow tablet loses the oldest, never the lane's time",
        8,
        ge=1,
        le=256,
    )


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class HubSettings:
    """The hub the gateway syncs with over mutual TLS (absent section: offline)."""

    url: str = setting("the hub's base URL, https://...")
    client_cert: Path = setting("this gateway's client certificate (PEM)")
    client_key: Path = setting("its private key (PEM; a file, never inline)")
    ca: Path = setting("the deployment CA certificate that signed the hub's certificate")
    batch_rows: int = setting(
        "most journal rows in one upload (POST /v1/ingest); a full batch goes at once",
        1000,
        ge=1,
        le=1000,
    )
    batch_interval_s: float = setting(
        "longest a journal row waits for its batch to fill before it is sent anyway",
        0.2,
        ge=0.01,
        le=60,
    )
    poll_s: float = setting(
        "how often the uploader and the alert fast lane look for new journal rows",
        0.05,
        ge=0.005,
        le=5,
    )
    alerts_fast_lane: bool = setting(
        "send alert rows at once to POST /v1/alerts too, ahead of any backlog", True
    )
    request_timeout_s: float = setting(
        "deadline of one upload request (connect, send, answer)", 15.0, ge=1, le=600
    )
    backoff_initial_s: float = setting(
        "first retry delay after a failed upload (doubles per failure, full jitter)",
        0.5,
        ge=0.01,
        le=60,
    )
    backoff_max_s: float = setting(
        "cap of the retry delay while the hub is unreachable or failing", 30.0, ge=0.1, le=3600
    )
    forbidden_backoff_s: float = setting(
        "retry interval while the hub refuses this gateway (403: not registered, certificate "
        "binding); short, so that `suishen hub gateway add` takes effect within seconds",
        5.0,
        ge=1,
        le=86400,
    )
    long_poll_s: int = setting(
        "how long the hub may hold a bundle request open (GET /v1/bundles/{kind}?wait=)",
        25,
        ge=0,
        le=120,
    )
    shutdown_flush_s: float = setting(
        "on stop, how long a last upload of the backlog may take (the journal keeps the rest)",
        1.0,
        ge=0,
        le=60,
    )

    def __post_init__(self) -> None:
        if not self.url.startswith("https://") or len(self.url) <= len("https://"):
            raise SettingError("url", f"must be an https:// URL, got {self.url!r}")
        if self.backoff_max_s < self.backoff_initial_s:
            raise SettingError("backoff_max_s", "must be at least backoff_initial_s")


class LogLevel(enum.StrEnum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class LoggingSettings:
    """Logs (structlog)."""

    level: LogLevel = setting("lowest level written", LogLevel.INFO)
    json: bool | None = optional("JSON lines (absent: JSON when stderr is not a terminal)")
