"""The hub's configuration: one TOML file -> one frozen dataclass tree (DESIGN §9.13).

The same typed settings as the gateway's (suishen.settings; central must not import gateway):
every setting is a dataclass field with a default and help text in ``metadata["help"]``; the
loader walks the tree by its type hints; unknown keys are errors; relative paths are taken
relative to the config file's directory (a leading ``~`` is expanded); every problem in a file
is reported at once with its key path::

    [hub]               state_dir (keys, embedded PostgreSQL)
    [database]          dsn (absent: embedded pgserver under state_dir/pgdata), pool sizes
    [gateway_listener]  host, port, pki_dir (ca.pem, hub.pem, hub.key): the mutual-TLS listener
    [web_listener]      enabled, host, port, sessions and login throttling: the web UI
    [retention]         days of scans/passages/visits/stays, partitions ahead, kept records
    [alerts]            the alert loop: deadlines per route and step, reminders, webhooks
    [privacy]           the pepper (file or environment variable), watchlist expiry limit
    [visits]            daily reset hour, longest visit and stay (suishen.central.derive)
    [visitors]          visitor invitations: longest window, how far ahead

``settings_markdown()`` lists every setting with its type, default and help: the text of
deploy/config/HUB_SETTINGS.md (a test keeps it current).
"""

# setting()/optional() wrap dataclasses.field: a Field, not a shared mutable default (RUF009).
# ruff: noqa: RUF009

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from suishen import settings
from suishen.central.alerts.settings import AlertsSection
from suishen.central.derive import DeriveSettings
from suishen.settings import ConfigError, SettingError, load_file, load_tree, optional, setting

__all__ = [
    "HubConfig",
    "HubConfigError",
    "load_config",
    "parse_config",
    "settings_markdown",
]


class HubConfigError(ConfigError):
    """The hub config cannot be used; ``problems`` lists each reason with its key path."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class HubSection:
    """This hub."""

    state_dir: Path = setting(
        "state directory: keys/ (bundle and sealing keys), pgdata/ (embedded PostgreSQL)",
        Path("hub-state"),
    )
    log_level: str = setting("lowest log level written: debug, info, warning, error", "info")

    def __post_init__(self) -> None:
        if self.log_level not in ("debug", "info", "warning", "error"):
            raise SettingError("log_level", "must be debug, info, warning or error")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class DatabaseSection:
    """The central PostgreSQL."""

    dsn: str | None = optional(
        "PostgreSQL (>= 14) DSN; absent: an embedded pgserver under hub.state_dir/pgdata "
        "(SCRAM password in hub.state_dir/db-password, private socket, no TCP)"
    )
    password_file: Path | None = optional(
        "file holding the DSN's password (first line; must not be group/other-readable)"
    )
    password_env: str = setting(
        "environment variable holding the DSN's password when password_file is not set",
        "SUISHEN_DB_PASSWORD",
    )
    min_size: int = setting("connections the pool keeps open", 2, ge=0)
    max_size: int = setting("most connections the pool opens", 10, ge=1)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class GatewayListenerSection:
    """The listener gateways upload to and fetch bundles from (mutual TLS, always)."""

    host: str = setting("address to listen on", "127.0.0.1")
    port: int = setting("port to listen on (0: any free port)", 8443, ge=0, le=65535)
    pki_dir: Path = setting(
        "directory made by `suishen pki`: ca.pem (verifies gateways), hub.pem and hub.key",
        Path("pki"),
    )
    max_body_bytes: int = setting("largest upload accepted (else 413)", 8 * 1024 * 1024, ge=1024)
    long_poll_max_s: int = setting("longest a bundle long-poll waits (wait= is capped)", 30, ge=1)
    header_timeout_s: float = setting(
        "seconds a connection has to finish its TLS handshake and then each request head "
        "(from connecting or from the previous answer; also the idle keep-alive limit)",
        20.0,
    )
    body_timeout_s: float = setting(
        "seconds a request has to deliver its whole body (else 408, connection closed)", 60.0
    )
    max_connections_per_gateway: int = setting(
        "open connections one gateway may hold (more: 503 and closed at once)", 16, ge=1
    )

    def __post_init__(self) -> None:
        for key in ("header_timeout_s", "body_timeout_s"):
            if not getattr(self, key) > 0:
                raise SettingError(key, "must be > 0")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class WebListenerSection:
    """The web listener: pages for site managers and analysts (plain HTTP: keep it on loopback
    behind a TLS-terminating proxy; cookies are marked Secure when the request came over TLS)."""

    enabled: bool = setting("serve the web UI beside the gateway listener", True)
    host: str = setting("address to listen on", "127.0.0.1")
    port: int = setting("port to listen on (0: any free port)", 8080, ge=0, le=65535)
    session_idle_s: int = setting("seconds a session may stay unused before it ends", 1800, ge=60)
    session_max_s: int = setting("seconds a session lasts at most from login", 43200, ge=60)
    login_max_failures: int = setting(
        "failed logins for one username within login_window_s that lock it", 5, ge=1
    )
    login_max_failures_per_address: int = setting(
        "failed logins from one client address within login_window_s that lock it", 20, ge=1
    )
    login_window_s: int = setting("seconds over which failed logins are counted", 900, ge=1)
    login_lock_s: int = setting("seconds a locked username or address is refused", 900, ge=1)
    live_feed_max_streams: int = setting("live-feed streams served at once (more: 503)", 200, ge=1)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RetentionSection:
    """How long records are kept (DESIGN §4) and partition upkeep."""

    days: int = setting("days of scans, passages, device events and visits kept", 28, ge=1)
    stays_days: int = setting("days of hotel stays kept (their own limit)", 28, ge=1)
    days_ahead: int = setting("daily partitions created this many days ahead", 7, ge=0)
    keep_alerts_days: int = setting("days alerts and their timelines are kept", 365, ge=1)
    keep_audit_days: int = setting("days audit rows are kept", 365, ge=1)
    maintenance_interval_s: int = setting("seconds between partition upkeep passes", 3600, ge=1)
    clock_skew_s: int = setting(
        "how far ahead of the hub's clock a row's time may be; rows later than that, or older "
        "than the retention plus a day, are refused (reason 'clock')",
        900,
        ge=0,
    )


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class PrivacySection:
    """Person keys and analysts' privacy limits (DESIGN §4). The pepper is never written here."""

    pepper_file: Path | None = optional(
        "file holding the deployment pepper (the gateways' pepper: document number -> person key)"
    )
    pepper_env: str = setting(
        "environment variable holding the pepper when pepper_file is not set", "SUISHEN_PEPPER"
    )
    watchlist_max_days: int = setting(
        "longest expiry an analyst may give a watchlist entry, in days", 90, ge=1, le=3650
    )


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class VisitorsSection:
    """Visitor invitations (tenants' pages, `suishen hub visitor invite`)."""

    max_days: int = setting("longest window of one invitation, in days", 7, ge=1, le=366)
    max_ahead_days: int = setting(
        "how many days ahead an invitation may start at the latest", 90, ge=1, le=3650
    )

    def limits(self) -> Any:
        """As central/store/invitations.VisitorLimits (imported here only when asked)."""
        from suishen.central.store.invitations import VisitorLimits  # noqa: PLC0415

        return VisitorLimits(max_days=self.max_days, max_ahead_days=self.max_ahead_days)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class HubConfig:
    """Everything one hub process needs."""

    hub: HubSection = setting("this hub", factory=HubSection)
    database: DatabaseSection = setting("the central PostgreSQL", factory=DatabaseSection)
    gateway_listener: GatewayListenerSection = setting(
        "the mutual-TLS gateway listener", factory=GatewayListenerSection
    )
    web_listener: WebListenerSection = setting(
        "the web listener (pages, live feeds)", factory=WebListenerSection
    )
    retention: RetentionSection = setting("retention", factory=RetentionSection)
    alerts: AlertsSection = setting("the alert loop", factory=AlertsSection)
    privacy: PrivacySection = setting("person keys and privacy limits", factory=PrivacySection)
    visits: DeriveSettings = setting("visits and stays", factory=DeriveSettings)
    visitors: VisitorsSection = setting("visitor invitations", factory=VisitorsSection)


def parse_config(document: Mapping[str, Any], *, base: Path) -> HubConfig:
    """Build the tree from a parsed TOML document; relative paths are taken from ``base``."""
    try:
        return load_tree(HubConfig, document, base_dir=base, expanduser=True)
    except ConfigError as exc:
        raise HubConfigError(exc.problems) from None


def load_config(path: str | os.PathLike[str]) -> HubConfig:
    """Read and check a hub TOML file; raise HubConfigError listing every problem."""
    base = Path(path).resolve().parent
    return load_file(HubConfig, path, base_dir=base, expanduser=True, error=HubConfigError)


SETTINGS_INTRO = """\
# Hub settings

<!-- Generated from suishen.central.config; do not edit. Regenerate with
     `suishen hub settings > deploy/config/HUB_SETTINGS.md` (a test checks it is current). -->

Every setting of the hub's config file (TOML, `suishen hub run --config FILE`), with its type,
default and meaning.

- Unknown keys are errors; every problem is reported with its key path.
- Relative paths are taken from the config file's directory.
- The database password is never written in the DSN on a command line:
  `database.password_file` or the environment variable named by `database.password_env`.
"""


def settings_markdown() -> str:
    """Every hub setting as Markdown, one table per section (deploy/config/HUB_SETTINGS.md)."""
    return settings.settings_markdown(HubConfig, SETTINGS_INTRO, full_keys=True)
