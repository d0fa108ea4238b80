"""The hub's configuration: one TOML file -> one frozen dataclass tree (DESIGN §9.13).

Like gateway/config.py, but small (and central must not import gateway): every setting is a
dataclass field with a default and help text in ``metadata["help"]``; the loader walks the
tree by its type hints; unknown keys are errors; relative paths are taken relative to the
config file's directory; every problem in a file is reported at once with its key path::

    [hub]               state_dir (keys, embedded PostgreSQL)
    [database]          dsn (absent: embedded pgserver under state_dir/pgdata), pool sizes
    [gateway_listener]  host, port, pki_dir (ca.pem, hub.pem, hub.key): the mutual-TLS listener
    [web]               host, port: the web listener of later issues
    [retention]         days of scans/passages/visits/stays, partitions ahead, kept records

Types the loader understands: str, int, float, bool, Path, X | None, nested dataclasses.
``settings_markdown()`` lists every setting with its help and default: the text of
deploy/config/HUB_SETTINGS.md (a test keeps it current).
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# Fields carry their help in metadata; dataclasses.field returns a Field, not a shared default.
# ruff: noqa: RUF009


class HubConfigError(Exception):
    """The hub config cannot be used; ``problems`` lists each as 'key.path: message'."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(problems))


def setting(help_text: str, default: Any = None, *, ge: int | None = None) -> Any:
    meta: dict[str, Any] = {"help": help_text}
    if ge is not None:
        meta["ge"] = ge
    return dataclasses.field(default=default, metadata=meta)


def section(help_text: str, factory: Any) -> Any:
    return dataclasses.field(default_factory=factory, metadata={"help": help_text})


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
            raise ValueError("log_level: must be debug, info, warning or error")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class DatabaseSection:
    """The central PostgreSQL."""

    dsn: str | None = setting(
        "PostgreSQL (>= 14) DSN; absent: an embedded pgserver under hub.state_dir/pgdata "
        "(SCRAM password in hub.state_dir/db-password, private socket, no TCP)"
    )
    password_file: Path | None = setting(
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
    port: int = setting("port to listen on (0: any free port)", 8443, ge=0)
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
        if self.port > 65535:
            raise ValueError("port: must be 0..65535")
        if not (self.header_timeout_s > 0 and self.body_timeout_s > 0):
            raise ValueError("header_timeout_s and body_timeout_s: must be > 0")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class WebSection:
    """The web listener (property managers, analysts; later issues)."""

    host: str = setting("address to listen on", "127.0.0.1")
    port: int = setting("port to listen on", 8080, ge=0)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RetentionSection:
    """How long records are kept (DESIGN §4) and partition upkeep."""

    days: int = setting("days of scans, passages, device events, visits, stays kept", 28, ge=1)
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
class HubConfig:
    """Everything one hub process needs."""

    hub: HubSection = section("this hub", HubSection)
    database: DatabaseSection = section("the central PostgreSQL", DatabaseSection)
    gateway_listener: GatewayListenerSection = section(
        "the mutual-TLS gateway listener", GatewayListenerSection
    )
    web: WebSection = section("the web listener", WebSection)
    retention: RetentionSection = section("retention", RetentionSection)


# --------------------------------------------------------------------------- loading


def _convert(value: Any, hint: Any, path: str, base: Path, problems: list[str]) -> Any:
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        if not isinstance(value, dict):
            problems.append(f"{path}: must be a table")
            return None
        return _build(hint, value, path, base, problems)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return _convert(value, options[0], path, base, problems)
    if hint is Path:
        if not isinstance(value, str):
            problems.append(f"{path}: must be a path (text)")
            return None
        candidate = Path(value).expanduser()
        return candidate if candidate.is_absolute() else base / candidate
    if hint is bool:
        if not isinstance(value, bool):
            problems.append(f"{path}: must be true or false")
        return value
    if hint is int:
        if type(value) is not int:
            problems.append(f"{path}: must be an integer")
        return value
    if hint is float:
        if type(value) not in (int, float):
            problems.append(f"{path}: must be a number")
            return value
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            problems.append(f"{path}: must be text")
        return value
    raise TypeError(f"unsupported setting type {hint!r}")  # pragma: no cover - a coding error


def _build(cls: type, table: dict[str, Any], prefix: str, base: Path, problems: list[str]) -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name: f for f in dataclasses.fields(cls)}
    dot = "." if prefix else ""
    problems.extend(f"{prefix}{dot}{key}: unknown setting" for key in table if key not in names)
    values: dict[str, Any] = {}
    before = len(problems)
    for name, fld in names.items():
        if name not in table:
            continue
        path = f"{prefix}{'.' if prefix else ''}{name}"
        value = _convert(table[name], hints[name], path, base, problems)
        ge = fld.metadata.get("ge")
        if ge is not None and type(value) is int and value < ge:
            problems.append(f"{path}: must be >= {ge}, got {value}")
        values[name] = value
    if len(problems) > before:
        return None
    try:
        return cls(**values)
    except ValueError as exc:
        problems.append(f"{prefix}{'.' if prefix else ''}{exc}")
        return None


def parse_config(document: dict[str, Any], *, base: Path) -> HubConfig:
    """Build the tree from a parsed TOML document; relative paths are taken from ``base``."""
    problems: list[str] = []
    config = _build(HubConfig, document, "", base, problems)
    if problems or config is None:
        raise HubConfigError(problems or ["the config is empty"])
    result: HubConfig = config
    return result


def load_config(path: Path) -> HubConfig:
    """Read and check a hub TOML file; raise HubConfigError listing every problem."""
    try:
        document = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise HubConfigError([f"cannot read {path}: {exc.strerror}"]) from exc
    except tomllib.TOMLDecodeError as exc:
        raise HubConfigError([f"{path}: not TOML: {exc}"]) from exc
    return parse_config(document, base=Path(path).resolve().parent)


def iter_settings(cls: type = HubConfig, prefix: str = "") -> Iterator[tuple[str, str, Any]]:
    """(key path, help, default) of every leaf setting."""
    hints = typing.get_type_hints(cls)
    for fld in dataclasses.fields(cls):
        path = f"{prefix}{fld.name}"
        hint = hints[fld.name]
        if dataclasses.is_dataclass(hint) and isinstance(hint, type):
            yield from iter_settings(hint, f"{path}.")
        else:
            yield path, fld.metadata["help"], fld.default


SETTINGS_HEADER = """# Hub settings

<!-- Generated from suishen.central.config; do not edit.  Regenerate with
     python -c "from suishen.central.config import settings_markdown as s; print(s(), end='')"
     > deploy/config/HUB_SETTINGS.md  (a test checks it is current). -->

Every setting of the hub's config file (TOML, `suishen hub run --config FILE`).  Unknown keys
are errors; relative paths are taken from the config file's directory.  The database password
is never written in the DSN on a command line: `database.password_file` or the environment
variable named by `database.password_env`.

"""


def settings_markdown() -> str:
    """Every hub setting as a Markdown table (deploy/config/HUB_SETTINGS.md)."""
    lines = [SETTINGS_HEADER + "| setting | default | what it is for |", "|---|---|---|"]
    for path, help_text, default in iter_settings():
        shown = "(none)" if default is None else f"`{default}`"
        lines.append(f"| `{path}` | {shown} | {help_text} |")
    return "\n".join(lines) + "\n"
