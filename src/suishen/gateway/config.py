"""The gateway's configuration: one TOML file -> one frozen dataclass tree, validated at start.

Every setting is a dataclass field with a default (or none: then it is required) and help text
in ``metadata={"help": ...}``; ranges go in the same metadata (``ge``/``le``). A small generic
loader walks the tree by its type hints, so the tree *is* the schema::

    config = load_config("deploy/config/office-building.toml")   # -> GatewayConfig
    config.lanes[0].gate.coil

Types the loader understands: str, int, float, bool, enum members (by value), Path (relative
paths are taken relative to the config file's directory), datetime.time (TOML local time or
"HH:MM"), Literal, tuple[X, ...] and frozenset[X] (TOML arrays), dict[str, X] (a TOML table),
X | None (absent = the default), nested dataclasses (TOML tables and arrays of tables), and
tagged unions of dataclasses chosen by their ``kind`` key (lane devices).

Errors: everything wrong in a file is reported at once, each problem with its key path::

    ConfigError                  the file cannot be used; .problems, each (path, message):
                                 lanes[2].gate.coil: must be 0..65535, got -1
                                 lanes[0].directon: unknown setting (did you mean 'direction'?)
    SettingError (ValueError)    raised by a section's __post_init__ for one of its keys;
                                 the loader turns it into a problem at that key's path

Unknown keys are errors (a typo must not pass silently). Secrets (the person-key pepper, OSDP
secure-channel keys) are never written in the file: it names a file or an environment variable.

``settings_markdown()`` renders every setting as deploy/config/SETTINGS.md (a test keeps the
committed file equal to it); ``suishen gateway settings`` prints it.
"""

# setting()/optional() wrap dataclasses.field (help text and limits in its metadata): they
# return a Field, not a shared mutable default, which is what RUF009 guards against.
# ruff: noqa: RUF009

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import difflib
import enum
import functools
import ipaddress
import os
import re
import tomllib
import types
import typing
import zoneinfo
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
from cryptography.hazmat.primitives.serialization import load_der_public_key

from suishen.drivers.tcp_scanner import TcpMode
from suishen.gateway.journal import JournalConfig
from suishen.gateway.policy import SiteRules
from suishen.gateway.records import Direction, SiteKind
from suishen.protocol.framing import FramingConfig, FramingError, Suffix
from suishen.protocol.scanner_commands import Vendor
from suishen.protocol.turnstile import (
    SerialSettings,
    TurnstileConfigError,
    TurnstileMap,
    parse_endpoint,
)

__all__ = [
    "ConfigError",
    "ConfigProblem",
    "GatewayConfig",
    "SettingError",
    "iter_settings",
    "load_config",
    "load_tree",
    "optional",
    "parse_config",
    "read_secret",
    "setting",
    "settings_markdown",
]

# --------------------------------------------------------------------------- errors


@dataclasses.dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong with a config, at a key path like ``lanes[2].gate.coil``."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(Exception):
    """The configuration cannot be used; ``problems`` lists every reason with its key path."""

    def __init__(self, problems: Sequence[ConfigProblem], *, source: str = "") -> None:
        self.problems = tuple(problems)
        self.source = source
        super().__init__("\n".join(str(p) for p in self.problems))

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(p.path for p in self.problems)


class SettingError(ValueError):
    """A section's own check failed for ``key`` (relative to the section; "" = the section)."""

    def __init__(self, key: str, message: str, *more: tuple[str, str]) -> None:
        super().__init__(f"{key}: {message}" if key else message)
        self.problems = ((key, message), *more)


# --------------------------------------------------------------------------- field helper

_MISSING: Any = dataclasses.MISSING


def setting(
    help_text: str,
    default: Any = _MISSING,
    *,
    factory: Any = _MISSING,
    ge: float | None = None,
    le: float | None = None,
) -> Any:
    """A documented setting: ``x: int = setting("what x is for", 5, ge=0)``; no default means
    the setting is required."""
    meta: dict[str, Any] = {"help": help_text}
    if ge is not None:
        meta["ge"] = ge
    if le is not None:
        meta["le"] = le
    return dataclasses.field(default=default, default_factory=factory, metadata=meta)


def optional(help_text: str, *, ge: float | None = None, le: float | None = None) -> Any:
    """A documented optional setting: absent from the file means None."""
    return setting(help_text, None, ge=ge, le=le)


def _join(path: str, key: str) -> str:
    if not path:
        return key
    if not key:
        return path
    return f"{path}{key}" if key.startswith("[") else f"{path}.{key}"


# --------------------------------------------------------------------------- generic loader

_INVALID: Any = object()
T = typing.TypeVar("T")
_NONE = type(None)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _init_fields(cls: type) -> list[dataclasses.Field[Any]]:
    return [f for f in dataclasses.fields(cls) if f.init]


def _describe(value: Any) -> str:
    names = {
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a float",
        list: "an array",
        dict: "a table",
        dt.time: "a time",
        dt.date: "a date",
        dt.datetime: "a date-time",
    }
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    kind = names.get(type(value), type(value).__name__)
    return f"{kind} ({text})" if not isinstance(value, list | dict) else kind


def _kind_of(cls: type) -> str:
    for f in dataclasses.fields(cls):
        if f.name == "kind" and isinstance(f.default, str):
            return f.default
    raise TypeError(f"{cls.__name__} is in a tagged union but has no `kind` default")


class _Loader:
    """Converts plain TOML values into a dataclass tree, collecting every problem."""

    def __init__(self, base_dir: Path | None) -> None:
        self.base_dir = base_dir
        self.problems: list[ConfigProblem] = []

    def fail(self, path: str, message: str) -> Any:
        self.problems.append(ConfigProblem(path, message))
        return _INVALID

    def section(self, raw: Any, cls: type, path: str) -> Any:
        if not isinstance(raw, dict):
            return self.fail(path, f"must be a table, got {_describe(raw)}")
        fields = {f.name: f for f in _init_fields(cls)}
        hints = _hints(cls)
        for key in raw:
            if key not in fields:
                close = difflib.get_close_matches(key, list(fields), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                self.fail(_join(path, key), f"unknown setting{hint}")
        kwargs: dict[str, Any] = {}
        ok = all(key in fields for key in raw)
        for name, f in fields.items():
            key_path = _join(path, name)
            if name in raw:
                value = self.value(raw[name], hints[name], key_path, f.metadata)
                if value is _INVALID:
                    ok = False
                else:
                    kwargs[name] = value
            elif f.default is _MISSING and f.default_factory is _MISSING:
                ok = self.fail(key_path, "missing required setting") is not _INVALID
        if not ok:
            return _INVALID
        try:
            return cls(**kwargs)
        except SettingError as exc:
            for key, message in exc.problems:
                self.fail(_join(path, key), message)
        except (ValueError, TypeError) as exc:
            # "name: message" from a section that names its field the plain way
            key, sep, message = str(exc).partition(": ")
            if sep and key in fields:
                self.fail(_join(path, key), message)
            else:
                self.fail(path, str(exc))
        return _INVALID

    def value(self, raw: Any, tp: Any, path: str, meta: Mapping[str, Any]) -> Any:
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if origin in (typing.Union, types.UnionType):
            options = [a for a in args if a is not _NONE]
            if len(options) == 1:
                return self.value(raw, options[0], path, meta)
            if all(dataclasses.is_dataclass(a) for a in options):
                return self.tagged(raw, options, path)
            raise TypeError(f"{path}: unsupported union {tp}")
        if origin is Literal:
            if raw not in args:
                return self.fail(path, f"must be one of {_choices(args)}, got {_describe(raw)}")
            return raw
        if origin in (tuple, frozenset):
            return self.sequence(raw, origin, args, path, meta)
        if origin in (dict, Mapping):
            return self.mapping(raw, args, path, meta)
        if dataclasses.is_dataclass(tp):
            return self.section(raw, typing.cast(type, tp), path)
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            options = [m.value for m in tp]
            for member in tp:
                if raw == member.value:
                    return member
            return self.fail(path, f"must be one of {_choices(options)}, got {_describe(raw)}")
        return self.scalar(raw, tp, path, meta)

    def scalar(self, raw: Any, tp: Any, path: str, meta: Mapping[str, Any]) -> Any:
        if tp is bool:
            if not isinstance(raw, bool):
                return self.fail(path, f"must be true or false, got {_describe(raw)}")
            return raw
        if tp is int:
            if isinstance(raw, bool) or not isinstance(raw, int):
                return self.fail(path, f"must be an integer, got {_describe(raw)}")
            return self.in_range(raw, path, meta)
        if tp is float:
            if isinstance(raw, bool) or not isinstance(raw, int | float):
                return self.fail(path, f"must be a number, got {_describe(raw)}")
            return self.in_range(float(raw), path, meta)
        if tp is str:
            if not isinstance(raw, str):
                return self.fail(path, f"must be a string, got {_describe(raw)}")
            return raw
        if tp is Path:
            if not isinstance(raw, str) or not raw:
                return self.fail(path, f"must be a non-empty path string, got {_describe(raw)}")
            p = Path(raw)
            return p if p.is_absolute() or self.base_dir is None else self.base_dir / p
        if tp is dt.time:
            return self.time(raw, path)
        if tp is Any:
            return raw
        raise TypeError(f"{path}: the loader does not support {tp!r}")

    def time(self, raw: Any, path: str) -> Any:
        if isinstance(raw, dt.time):
            return raw
        if isinstance(raw, str):
            try:
                return dt.time.fromisoformat(raw)
            except ValueError:
                pass
        return self.fail(path, f"must be a time of day like 04:00, got {_describe(raw)}")

    def in_range(self, value: float, path: str, meta: Mapping[str, Any]) -> Any:
        lo, hi = meta.get("ge"), meta.get("le")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            if lo is not None and hi is not None:
                return self.fail(path, f"must be {_num(lo)}..{_num(hi)}, got {_num(value)}")
            if lo is not None:
                return self.fail(path, f"must be >= {_num(lo)}, got {_num(value)}")
            assert hi is not None
            return self.fail(path, f"must be <= {_num(hi)}, got {_num(value)}")
        return value

    def sequence(self, raw: Any, origin: Any, args: tuple[Any, ...], path: str, meta: Any) -> Any:
        if not isinstance(raw, list):
            return self.fail(path, f"must be an array, got {_describe(raw)}")
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            if len(raw) != len(args):
                return self.fail(path, f"must have {len(args)} items, got {len(raw)}")
            item_types = list(args)
        else:
            item_types = [args[0]] * len(raw)
        items = [
            self.value(item, item_tp, _join(path, f"[{i}]"), meta)
            for i, (item, item_tp) in enumerate(zip(raw, item_types, strict=True))
        ]
        if any(item is _INVALID for item in items):
            return _INVALID
        if origin is frozenset:
            return frozenset(items)
        return tuple(items)

    def mapping(self, raw: Any, args: tuple[Any, ...], path: str, meta: Any) -> Any:
        if not isinstance(raw, dict):
            return self.fail(path, f"must be a table, got {_describe(raw)}")
        key_tp, value_tp = args
        out: dict[Any, Any] = {}
        for key, item in raw.items():
            item_path = _join(path, key)
            k = self.value(key, key_tp, item_path, {})
            v = self.value(item, value_tp, item_path, meta)
            if k is not _INVALID and v is not _INVALID:
                out[k] = v
        return out if len(out) == len(raw) else _INVALID

    def tagged(self, raw: Any, variants: list[Any], path: str) -> Any:
        if not isinstance(raw, dict):
            return self.fail(path, f"must be a table with a `kind`, got {_describe(raw)}")
        by_kind = {_kind_of(cls): cls for cls in variants}
        if "kind" not in raw:
            return self.fail(
                _join(path, "kind"), f"missing required setting (one of {_choices(by_kind)})"
            )
        cls = by_kind.get(raw["kind"])
        if cls is None:
            return self.fail(
                _join(path, "kind"),
                f"must be one of {_choices(by_kind)}, got {_describe(raw['kind'])}",
            )
        return self.section(raw, cls, path)


def _choices(values: Any) -> str:
    return ", ".join(repr(v) for v in values)


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def load_tree(cls: type[T], data: Mapping[str, Any], *, base_dir: Path | None = None) -> T:
    """Build any settings dataclass from plain TOML data; raises ConfigError."""
    loader = _Loader(base_dir)
    result = loader.section(dict(data), cls, "")
    if loader.problems or result is _INVALID:
        raise ConfigError(loader.problems or [ConfigProblem("", "invalid configuration")])
    return typing.cast(T, result)


# --------------------------------------------------------------------------- shared checks

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _check_id(key: str, value: str) -> None:
    if not _ID.fullmatch(value):
        raise SettingError(key, f"must be 1-64 letters, digits, '_', '.' or '-', got {value!r}")


def _one_of(section: object, *keys: str, required: bool = True) -> None:
    given = [k for k in keys if getattr(section, k) is not None]
    if len(given) > 1:
        raise SettingError(given[1], f"set only one of {', '.join(keys)}")
    if required and not given:
        raise SettingError(keys[0], f"missing required setting (or set {', '.join(keys[1:])})")


def _check_env_name(key: str, value: str | None) -> None:
    if value is not None and not _ENV_NAME.fullmatch(value):
        raise SettingError(key, f"must be an environment variable name, got {value!r}")


def _b64_key(key: str, text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SettingError(key, "must be base64") from None


def _ed25519_key(der: bytes, key: str) -> ed25519.Ed25519PublicKey:
    try:
        public = load_der_public_key(der)
    except ValueError:
        raise SettingError(key, "is not a DER SubjectPublicKeyInfo") from None
    if not isinstance(public, ed25519.Ed25519PublicKey):
        raise SettingError(key, "must be an Ed25519 public key")
    return public


def _x25519_key(der_or_raw: bytes, key: str) -> x25519.X25519PublicKey:
    if len(der_or_raw) == 32:
        return x25519.X25519PublicKey.from_public_bytes(der_or_raw)
    try:
        public = load_der_public_key(der_or_raw)
    except ValueError:
        raise SettingError(key, "is neither 32 raw bytes nor a DER SubjectPublicKeyInfo") from None
    if not isinstance(public, x25519.X25519PublicKey):
        raise SettingError(key, "must be an X25519 public key")
    return public


def _read_key_file(path: Path, config_key: str) -> bytes:
    """A key file: PEM/base64 text or raw DER bytes."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            [ConfigProblem(config_key, f"cannot read {path}: {exc.strerror}")]
        ) from exc
    text = data.strip()
    if text.startswith(b"-----BEGIN"):
        lines = [ln for ln in text.splitlines() if not ln.startswith(b"-----")]
        text = b"".join(lines)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return data


def _as_config_error(exc: SettingError, section: str) -> ConfigError:
    return ConfigError([ConfigProblem(_join(section, k), m) for k, m in exc.problems])


def read_secret(
    file: Path | None, env: str | None, *, key: str, environ: Mapping[str, str] | None = None
) -> bytes:
    """A secret named by a file path or an environment variable (never inline in the config).
    Surrounding whitespace is dropped. Raises ConfigError naming ``key``."""
    environ = os.environ if environ is None else environ
    if file is not None:
        try:
            return file.read_bytes().strip()
        except OSError as exc:
            problem = ConfigProblem(f"{key}_file", f"cannot read {file}: {exc.strerror}")
            raise ConfigError([problem]) from exc
    if env is not None:
        value = environ.get(env)
        if not value:
            problem = ConfigProblem(f"{key}_env", f"environment variable {env} is not set")
            raise ConfigError([problem])
        return value.strip().encode()
    raise ConfigError([ConfigProblem(key, "no file or environment variable given")])


# --------------------------------------------------------------------------- sections


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class GatewaySection:
    """This gateway."""

    id: str = setting("this gateway's id, unique in the deployment (journal records carry it)")

    def __post_init__(self) -> None:
        _check_id("id", self.id)


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
        _check_id("id", self.id)
        if not self.zones:
            raise SettingError("zones", "must name at least one zone")
        for i, zone in enumerate(self.zones):
            _check_id(f"zones[{i}]", zone)
        if len(set(self.zones)) != len(self.zones):
            raise SettingError("zones", "zone names must be unique")
        try:
            zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise SettingError("timezone", f"unknown time zone {self.timezone!r}") from None


# ----- scanners


class Parity(enum.StrEnum):
    NONE = "N"
    EVEN = "E"
    ODD = "O"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class FramingSettings:
    """How a line scanner ends and marks each scan (see protocol.framing)."""

    suffix: Suffix = setting("what ends a scan on the wire", Suffix.ANY)
    prefix: str = setting("fixed text the scanner sends before each scan (empty: none)", "")
    strip_aim: bool = setting("strip a leading AIM symbology id such as ]Q1", True)
    max_length: int = setting("longest accepted scan text, in bytes", 8192, ge=1, le=65536)
    idle_flush_s: float | None = optional(
        "end a scan after this many idle seconds without a suffix (absent: off; required "
        "with suffix none)",
        ge=0.001,
        le=10,
    )
    fallback_encoding: str = setting(
        "encoding tried when a scan is not UTF-8 (empty: none)", "gb18030"
    )

    def to_framing(self) -> FramingConfig:
        return FramingConfig(
            suffix=self.suffix,
            prefix=self.prefix.encode(),
            strip_aim=self.strip_aim,
            max_length=self.max_length,
            idle_flush_s=self.idle_flush_s,
            fallback_encoding=self.fallback_encoding or None,
        )

    def __post_init__(self) -> None:
        try:
            self.to_framing()
        except FramingError as exc:
            raise SettingError("", str(exc)) from None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class SerialScannerSettings:
    """A QR scanner on a serial port (or any pyserial URL)."""

    kind: Literal["serial"] = setting("device kind", "serial")
    url: str = setting("port path or pyserial URL: /dev/ttyUSB0, socket://127.0.0.1:7000")
    baudrate: int = setting("line speed", 9600, ge=50, le=4_000_000)
    bytesize: int = setting("data bits", 8, ge=5, le=8)
    parity: Parity = setting("parity: N, E or O", Parity.NONE)
    stopbits: float = setting("stop bits: 1, 1.5 or 2", 1.0)
    framing: FramingSettings = setting("scan framing", factory=FramingSettings)
    vendor: Vendor | None = optional(
        "vendor command set for beep/LED verdicts (absent: a plain scanner)"
    )
    reconnect_initial_s: float = setting("first reconnect delay", 0.05, ge=0.001, le=60)
    reconnect_max_s: float = setting("longest reconnect delay", 5.0, ge=0.01, le=600)

    def __post_init__(self) -> None:
        if not self.url:
            raise SettingError("url", "must not be empty")
        if self.stopbits not in (1, 1.5, 2):
            raise SettingError("stopbits", f"must be 1, 1.5 or 2, got {self.stopbits}")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class TcpScannerSettings:
    """A QR scanner on a TCP line: it connects to us (listen) or we to it (connect)."""

    kind: Literal["tcp"] = setting("device kind", "tcp")
    mode: TcpMode = setting("listen: the scanner connects to us; connect: we connect to it")
    host: str = setting("listen: address to bind; connect: the scanner's address", "127.0.0.1")
    port: int = setting("TCP port (listen: 0 picks a free one)", ge=0, le=65535)
    framing: FramingSettings = setting("scan framing", factory=FramingSettings)
    max_clients: int = setting(
        "listen: scanners connected at once; when full, a new one evicts the longest idle",
        8,
        ge=1,
        le=256,
    )
    idle_timeout_s: float = setting(
        "listen: drop a connection that sent nothing for this long (0: never); a scanner "
        "reconnects by itself",
        600.0,
        ge=0,
        le=86400,
    )
    allowed_peers: tuple[str, ...] = setting(
        "listen: addresses or CIDR networks scanners may connect from (empty: any); others "
        "are closed at once and logged",
        (),
    )
    connect_timeout_s: float = setting("connect: one attempt's deadline", 3.0, ge=0.01, le=60)
    reconnect_initial_s: float = setting("connect: first reconnect delay", 0.05, ge=0.001, le=60)
    reconnect_max_s: float = setting("connect: longest reconnect delay", 5.0, ge=0.01, le=600)

    def __post_init__(self) -> None:
        if self.mode is TcpMode.CONNECT and self.port == 0:
            raise SettingError("port", "connect mode needs the scanner's port, got 0")
        for peer in self.allowed_peers:
            try:
                ipaddress.ip_network(peer, strict=False)
            except ValueError:
                raise SettingError(
                    "allowed_peers", f"{peer!r} is not an IP address or CIDR network"
                ) from None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class OsdpScannerSettings:
    """Card reads from an OSDP reader (card numbers only: a QR code does not fit OSDP)."""

    kind: Literal["osdp"] = setting("device kind", "osdp")
    bus: str = setting("the [[osdp]] bus id the reader is on")
    address: int = setting("the reader's OSDP address on that bus", ge=0, le=126)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class UhppoteScannerSettings:
    """Card swipes at a UHPPOTE controller's readers."""

    kind: Literal["uhppote"] = setting("device kind", "uhppote")
    controller: str = setting("the [[uhppote]] controller id")
    doors: frozenset[int] = setting(
        "the doors whose reader swipes belong to this lane (empty: all)", frozenset(), ge=1, le=4
    )


ScannerSettings = (
    SerialScannerSettings | TcpScannerSettings | OsdpScannerSettings | UhppoteScannerSettings
)


# ----- gates


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ModbusGateSettings:
    """A turnstile or relay board on Modbus TCP or RTU: pulse a coil, read passage."""

    kind: Literal["modbus"] = setting("device kind", "modbus")
    url: str = setting("tcp://HOST:PORT, or rtu:SERIAL_URL for Modbus RTU")
    unit: int = setting("Modbus unit (device) id", 1, ge=1, le=247)
    coil: int = setting("the coil that opens the gate", 0, ge=0, le=65535)
    passage_input: int = setting("discrete input latching a passage", 0, ge=0, le=65535)
    passage_counter: int | None = optional(
        "input register counting passages (absent: use passage_input)", ge=0, le=65535
    )
    pulse_register: int | None = optional(
        "holding register of the board's own pulse function (absent: we time the pulse)",
        ge=0,
        le=65535,
    )
    pulse_unit_ms: int = setting("time unit of pulse_register", 100, ge=1, le=60000)
    baudrate: int = setting("RTU only: line speed", 9600)
    parity: Parity = setting("RTU only: parity", Parity.NONE)
    command_timeout_s: float = setting("deadline of one Modbus transaction", 0.25, ge=0.01, le=10)
    connect_timeout_s: float = setting("deadline of one connect attempt", 1.0, ge=0.01, le=60)
    poll_interval_s: float = setting("passage polling interval", 0.01, ge=0.001, le=1)
    max_missed: int = setting("timeouts in a row before reconnecting", 3, ge=1, le=100)

    def turnstile_map(self, pulse_ms: int = 500) -> TurnstileMap:
        return TurnstileMap(
            unit=self.unit,
            open_coil=self.coil,
            passage_input=self.passage_input,
            passage_counter=self.passage_counter,
            pulse_register=self.pulse_register,
            pulse_unit_ms=self.pulse_unit_ms,
            pulse_ms=pulse_ms,
        )

    def serial_settings(self) -> SerialSettings:
        return SerialSettings(baudrate=self.baudrate, parity=self.parity.value)

    def __post_init__(self) -> None:
        names = {"open_coil": "coil", "serial_url": "url", "host": "url", "port": "url"}
        try:
            parse_endpoint(self.url)
            self.turnstile_map()
            self.serial_settings()
        except TurnstileConfigError as exc:
            message = str(exc).removeprefix(f"{exc.field}: ")
            raise SettingError(names.get(exc.field, exc.field), message) from None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class UhppoteGateSettings:
    """One door of a UHPPOTE controller: remote open, passage from the door sensor."""

    kind: Literal["uhppote"] = setting("device kind", "uhppote")
    controller: str = setting("the [[uhppote]] controller id")
    door: int = setting("door number on the controller", 1, ge=1, le=4)
    door_delay_s: int | None = optional(
        "unlock time set on the controller at connect (absent: leave the controller's)",
        ge=1,
        le=255,
    )


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class OsdpGateSettings:
    """The relay output of an OSDP reader; passage from its passage input."""

    kind: Literal["osdp"] = setting("device kind", "osdp")
    bus: str = setting("the [[osdp]] bus id the reader is on")
    address: int = setting("the reader's OSDP address on that bus", ge=0, le=126)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class NoGateSettings:
    """No gate (a hotel front desk): decisions are shown and journalled, nothing opens."""

    kind: Literal["none"] = setting("device kind", "none")


GateSettings = ModbusGateSettings | UhppoteGateSettings | OsdpGateSettings | NoGateSettings


# ----- indicators


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ScannerIndicatorSettings:
    """The lane's own scanner shows the verdict (a serial scanner with a vendor, or OSDP)."""

    kind: Literal["scanner"] = setting("device kind", "scanner")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class OsdpIndicatorSettings:
    """The LED and buzzer of an OSDP reader."""

    kind: Literal["osdp"] = setting("device kind", "osdp")
    bus: str = setting("the [[osdp]] bus id the reader is on")
    address: int = setting("the reader's OSDP address on that bus", ge=0, le=126)


IndicatorSettings = ScannerIndicatorSettings | OsdpIndicatorSettings


# ----- shared hardware


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class UhppoteControllerSettings:
    """A UHPPOTE access controller (UDP); lanes use its doors and readers by its id."""

    id: str = setting("the controller's id, used by lane devices")
    serial: int = setting("the controller's serial number", ge=1, le=2**32 - 1)
    host: str = setting("the controller's IPv4 address", "127.0.0.1")
    port: int = setting("the controller's UDP port", 60000, ge=1, le=65535)
    listen: bool = setting("receive events on a listener socket (false: poll only)", True)
    listen_host: str = setting("our event listener address, told to the controller", "127.0.0.1")
    listen_port: int = setting("our event listener port (0: any free port)", 0, ge=0, le=65535)
    request_timeout_s: float = setting("deadline of one request", 0.5, ge=0.01, le=10)
    heartbeat_s: float = setting("status poll interval", 1.0, ge=0.01, le=60)
    down_after: int = setting("failed requests in a row before the link is down", 2, ge=1)
    set_clock: bool = setting("set the controller's clock at connect", True)

    def __post_init__(self) -> None:
        _check_id("id", self.id)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class OsdpReaderSettings:
    """One reader (PD) on an OSDP bus."""

    address: int = setting("OSDP address", ge=0, le=126)
    scbk_file: Path | None = optional(
        "file holding the 16-byte secure-channel key in hex (absent with scbk_env: no secure "
        "channel)"
    )
    scbk_env: str | None = optional("environment variable holding the key in hex")
    reader_no: int = setting("reader number inside the PD", 0, ge=0, le=255)
    led_number: int = setting("LED used for verdicts", 0, ge=0, le=255)
    output_no: int = setting("relay output that opens the door", 0, ge=0, le=255)
    passage_input: int | None = optional(
        "input wired to the passage sensor (absent: none wired)", ge=0, le=255
    )

    def __post_init__(self) -> None:
        _one_of(self, "scbk_file", "scbk_env", required=False)
        _check_env_name("scbk_env", self.scbk_env)

    def read_scbk(self, environ: Mapping[str, str] | None = None) -> bytes | None:
        """The secure-channel key, or None when the reader has none configured."""
        if self.scbk_file is None and self.scbk_env is None:
            return None
        text = read_secret(self.scbk_file, self.scbk_env, key="scbk", environ=environ)
        try:
            key = bytes.fromhex(text.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            key = b""
        if len(key) != 16:
            raise ConfigError([ConfigProblem("scbk", "must be 32 hex digits (16 bytes)")])
        return key


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class OsdpBusSettings:
    """An OSDP (RS-485) bus with its readers; we are its control panel."""

    id: str = setting("the bus id, used by lane devices")
    port: str = setting("serial port or URL: /dev/ttyUSB1, socket://127.0.0.1:4001")
    baudrate: int = setting("line speed", 115200, ge=9600, le=230400)
    poll_interval_s: float = setting("control panel refresh interval", 0.005, ge=0.001, le=1)
    dead_after_s: float = setting("a reader silent this long is down", 1.0, ge=0.05, le=60)
    refused_retry_s: float = setting("retry interval after a key mismatch", 30.0, ge=0.1)
    command_timeout_s: float = setting("deadline of one command", 1.0, ge=0.01, le=10)
    readers: tuple[OsdpReaderSettings, ...] = setting("the readers on this bus")

    def __post_init__(self) -> None:
        _check_id("id", self.id)
        if not self.readers:
            raise SettingError("readers", "a bus needs at least one reader")
        seen: dict[int, int] = {}
        for i, reader in enumerate(self.readers):
            if reader.address in seen:
                raise SettingError(
                    f"readers[{i}].address",
                    f"duplicate address {reader.address} (also readers[{seen[reader.address]}])",
                )
            seen[reader.address] = i

    def reader(self, address: int) -> OsdpReaderSettings | None:
        return next((r for r in self.readers if r.address == address), None)


# ----- lanes


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class LaneSettings:
    """One lane: a scanner, a gate (or none) and an optional indicator, with a direction."""

    id: str = setting("the lane's id, unique in this gateway")
    direction: Direction = setting("which way the lane lets people: in, out, checkin, checkout")
    zone: str = setting("the zone the lane leads into (or out of)", "main")
    has_passage_sensor: bool = setting(
        "the gate reports passages (false: an open counts as passed)", True
    )
    passage_timeout_s: float = setting(
        "after an open, how long to wait for the passage", 5.0, ge=0.1, le=300
    )
    open_pulse_ms: int = setting("how long the gate's open relay is pulsed", 500, ge=1, le=60000)
    scan_max_age_s: float = setting(
        "a scan that waited longer than this for the lane (or arrived while the gate was open "
        "for someone else) is journalled as lane_busy and opens nothing",
        2.0,
        ge=0.05,
        le=60,
    )
    discard_interval_s: float = setting(
        "the lane journals input its scanner threw away (garbage, overlong, dropped scans) at "
        "most once per this many seconds; a burst is folded into one record with its count",
        1.0,
        ge=0.01,
        le=60,
    )
    scanner: ScannerSettings = setting("the lane's scanner or card reader (by kind)")
    gate: GateSettings = setting("the lane's gate (by kind; kind none for a desk)")
    indicator: IndicatorSettings | None = optional(
        "what shows the verdict, besides the gate (absent: nothing)"
    )

    def __post_init__(self) -> None:
        _check_id("id", self.id)


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
        _one_of(self, "bundle_key", "bundle_key_file")
        if self.bundle_key is not None:
            _ed25519_key(_b64_key("bundle_key", self.bundle_key), "bundle_key")

    def read_bundle_key(self) -> ed25519.Ed25519PublicKey:
        """The pinned bundle key (reads bundle_key_file); raises ConfigError."""
        if self.bundle_key is not None:
            return _ed25519_key(base64.b64decode(self.bundle_key), "bundle_key")
        assert self.bundle_key_file is not None
        der = _read_key_file(self.bundle_key_file, "lists.bundle_key_file")
        try:
            return _ed25519_key(der, "bundle_key_file")
        except SettingError as exc:
            raise _as_config_error(exc, "lists") from None


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
        _one_of(self, "pepper_file", "pepper_env")
        _check_env_name("pepper_env", self.pepper_env)
        _one_of(self, "hub_seal_key", "hub_seal_key_file")
        if self.hub_seal_key is not None:
            _x25519_key(_b64_key("hub_seal_key", self.hub_seal_key), "hub_seal_key")

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
            return _x25519_key(base64.b64decode(self.hub_seal_key), "hub_seal_key")
        assert self.hub_seal_key_file is not None
        data = _read_key_file(self.hub_seal_key_file, "privacy.hub_seal_key_file")
        try:
            return _x25519_key(data, "hub_seal_key_file")
        except SettingError as exc:
            raise _as_config_error(exc, "privacy") from None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class HttpSettings:
    """The local status listener: /health, /status, /metrics."""

    host: str = setting(
        "address to listen on (keep it loopback unless a proxy fronts it)", "127.0.0.1"
    )
    port: int = setting("port to listen on (0: any free port)", 9180, ge=0, le=65535)


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
        "retry delay after the hub refused this gateway (403: certificate binding)",
        300.0,
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
        2.0,
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


# --------------------------------------------------------------------------- the tree


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
    hub: HubSettings | None = optional("the hub (absent: offline)")
    logging: LoggingSettings = setting("logging", factory=LoggingSettings)

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
    controllers = {c.id for c in config.uhppote}
    buses = {b.id: b for b in config.osdp}
    exclusive: dict[tuple[Any, ...], str] = {}  # a device end only one lane may own
    for i, lane in enumerate(config.lanes):
        at = f"lanes[{i}]"
        if lane.zone not in config.site.zones:
            yield (
                f"{at}.zone",
                f"unknown zone {lane.zone!r} (site.zones: {_choices(config.site.zones)})",
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
    file = Path(path)
    try:
        with file.open("rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(
            [ConfigProblem("", f"cannot read {file}: {exc.strerror}")], source=str(file)
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([ConfigProblem("", f"not valid TOML: {exc}")], source=str(file)) from exc
    try:
        return parse_config(data, base_dir=file.parent if base_dir is None else base_dir)
    except ConfigError as exc:
        raise ConfigError(exc.problems, source=str(file)) from None


# --------------------------------------------------------------------------- documentation


def _unwrap_optional(tp: Any) -> Any:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not _NONE]
        if len(options) == 1:
            return options[0]
    return tp


def _variants(tp: Any) -> list[type] | None:
    tp = _unwrap_optional(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return [a for a in typing.get_args(tp) if a is not _NONE]
    return None


def _type_text(tp: Any, meta: Mapping[str, Any]) -> str:
    tp = _unwrap_optional(tp)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if _variants(tp):
        return "table, by `kind`"
    if origin is Literal:
        return " or ".join(f'`"{a}"`' for a in args)
    if origin in (tuple, frozenset):
        item = args[0]
        if dataclasses.is_dataclass(item):
            return "array of tables"
        return f"array of {_type_text(item, meta)}"
    if origin in (dict, Mapping):
        return f"table of {_type_text(args[1], meta)}"
    if dataclasses.is_dataclass(tp):
        return "table"
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return "one of " + ", ".join(f'`"{m.value}"`' for m in tp)
    names = {str: "string", bool: "boolean", Path: "path", dt.time: "time of day"}
    if tp in (int, float):
        text = "integer" if tp is int else "number"
        lo, hi = meta.get("ge"), meta.get("le")
        if lo is not None and hi is not None:
            return f"{text}, {_num(lo)}..{_num(hi)}"
        if lo is not None:
            return f"{text}, >= {_num(lo)}"
        return text
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def _value_text(value: Any) -> str:
    if value is None:
        return "absent"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        return f'"{value.value}"'
    if isinstance(value, str | Path):
        return f'"{value}"'
    if isinstance(value, dt.time):
        return value.isoformat(timespec="minutes")
    if isinstance(value, frozenset):
        value = sorted(value, key=str)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_value_text(v)}" for k, v in value.items()) + "}"
    if dataclasses.is_dataclass(value):
        return "(table defaults)"
    return repr(value)


def _default_text(f: dataclasses.Field[Any]) -> str:
    if f.default is not _MISSING:
        return f"`{_value_text(f.default)}`"
    if f.default_factory is not _MISSING:
        factory = typing.cast(typing.Callable[[], Any], f.default_factory)
        return f"`{_value_text(factory())}`"
    return "**required**"


def iter_settings(
    cls: type, path: str = ""
) -> Iterator[tuple[str, type, list[tuple[dataclasses.Field[Any], Any]]]]:
    """Every section of a settings tree: (key path, class, [(field, type hint)]), depth first.

    Arrays of tables appear as ``lanes[]``; a tagged union's variants each as
    ``lanes[].scanner`` with their own class."""
    hints = _hints(cls)
    fields = [(f, hints[f.name]) for f in _init_fields(cls)]
    yield path, cls, fields
    for f, tp in fields:
        sub_path = _join(path, f.name)
        inner = _unwrap_optional(tp)
        if typing.get_origin(inner) in (tuple, frozenset):
            inner = typing.get_args(inner)[0]
            sub_path += "[]"
        variants = _variants(inner)
        if variants:
            for variant in variants:
                yield from iter_settings(variant, sub_path)
        elif dataclasses.is_dataclass(inner):
            yield from iter_settings(typing.cast(type, inner), sub_path)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


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
    out = [SETTINGS_INTRO]
    done: set[tuple[str, type]] = set()
    for path, section, fields in iter_settings(cls):
        if (path, section) in done:  # e.g. the framing table of each line-scanner kind
            continue
        done.add((path, section))
        kind = next((f.default for f, _ in fields if f.name == "kind"), None)
        title = f"`{path}`" if path else "Top level: the sections"
        title += f' (kind = "{kind}")' if isinstance(kind, str) else ""
        summary = (section.__doc__ or "").strip().splitlines()[0]
        out.append(f"\n## {title}\n\n{summary}\n")
        out.append("| Setting | Type | Default | Description |")
        out.append("|---|---|---|---|")
        for f, tp in fields:
            help_text = _cell(str(f.metadata.get("help", "")))
            type_text = _cell(_type_text(tp, f.metadata))
            out.append(f"| `{f.name}` | {type_text} | {_default_text(f)} | {help_text} |")
    return "\n".join(out) + "\n"
