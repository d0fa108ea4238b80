"""Typed settings: one TOML file -> one frozen dataclass tree, validated as a whole.

The one settings mechanism of the gateway (gateway/config/) and the hub (central/config.py).
Every setting is a dataclass field with a default (or none: then it is required) and help text
in ``metadata={"help": ...}``; ranges go in the same metadata (``ge``/``le``). The loader walks
the tree by its type hints, so the tree *is* the schema::

    @dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
    class Section:
        # the first line of its docstring heads the section's table in the Markdown
        port: int = setting("port to listen on", 8080, ge=0, le=65535)

    tree = load_file(Config, "deploy/config/x.toml")    # or load_tree(Config, parsed_toml)

Types the loader understands: str, int, float, bool, enum members (by value), Path (relative
paths are taken relative to ``base_dir``, normally the config file's directory), datetime.time
(TOML local time or "HH:MM"), Literal, tuple[X, ...] and frozenset[X] (TOML arrays),
dict[str, X] (a TOML table), X | None (absent = the default), nested dataclasses (TOML tables
and arrays of tables), and tagged unions of dataclasses chosen by their ``kind`` key.

Errors: everything wrong in a file is reported at once, each problem with its key path::

    ConfigError                  the file cannot be used; .problems, each (path, message):
                                 lanes[2].gate.coil: must be 0..65535, got -1
                                 lanes[0].directon: unknown setting (did you mean 'direction'?)
    SettingError (ValueError)    raised by a section's __post_init__ for one of its keys;
                                 the loader turns it into a problem at that key's path

Unknown keys are errors (a typo must not pass silently). ``iter_settings()`` walks a tree's
sections and ``settings_markdown()`` renders every setting as Markdown (deploy/config/SETTINGS.md
and HUB_SETTINGS.md are generated with it; tests keep the committed files equal).
"""

# setting()/optional() wrap dataclasses.field (help text and limits in its metadata): they
# return a Field, not a shared mutable default, which is what RUF009 guards against.

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import enum
import functools
import os
import tomllib
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

__all__ = [
    "ConfigError",
    "ConfigProblem",
    "SettingError",
    "choices",
    "iter_settings",
    "join_path",
    "load_file",
    "load_tree",
    "optional",
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


def join_path(path: str, key: str) -> str:
    """``path`` + ``key`` as a key path: ``a.b``, ``a[2]``; either may be empty."""
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

    def __init__(self, base_dir: Path | None, *, expanduser: bool = False) -> None:
        self.base_dir = base_dir
        self.expanduser = expanduser
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
                self.fail(join_path(path, key), f"unknown setting{hint}")
        kwargs: dict[str, Any] = {}
        ok = all(key in fields for key in raw)
        for name, f in fields.items():
            key_path = join_path(path, name)
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
                self.fail(join_path(path, key), message)
        except (ValueError, TypeError) as exc:
            # "name: message" from a section that names its field the plain way
            key, sep, message = str(exc).partition(": ")
            if sep and key in fields:
                self.fail(join_path(path, key), message)
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
                return self.fail(path, f"must be one of {choices(args)}, got {_describe(raw)}")
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
            return self.fail(path, f"must be one of {choices(options)}, got {_describe(raw)}")
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
            p = Path(raw).expanduser() if self.expanduser else Path(raw)
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
            self.value(item, item_tp, join_path(path, f"[{i}]"), meta)
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
            item_path = join_path(path, key)
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
                join_path(path, "kind"), f"missing required setting (one of {choices(by_kind)})"
            )
        cls = by_kind.get(raw["kind"])
        if cls is None:
            return self.fail(
                join_path(path, "kind"),
                f"must be one of {choices(by_kind)}, got {_describe(raw['kind'])}",
            )
        return self.section(raw, cls, path)


def choices(values: Any) -> str:
    """Values listed for a message: 'a', 'b'."""
    return ", ".join(repr(v) for v in values)


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def load_tree(
    cls: type[T], data: Mapping[str, Any], *, base_dir: Path | None = None, expanduser: bool = False
) -> T:
    """Build any settings dataclass from plain TOML data; raises ConfigError.

    Relative paths are taken relative to ``base_dir`` (None: left relative); ``expanduser``
    also expands a leading ``~`` in paths."""
    loader = _Loader(base_dir, expanduser=expanduser)
    result = loader.section(dict(data), cls, "")
    if loader.problems or result is _INVALID:
        raise ConfigError(loader.problems or [ConfigProblem("", "invalid configuration")])
    return typing.cast(T, result)


def load_file(
    cls: type[T],
    path: str | os.PathLike[str],
    *,
    base_dir: Path | None = None,
    expanduser: bool = False,
    error: type[ConfigError] = ConfigError,
) -> T:
    """Read, parse and validate a TOML settings file; raises ``error`` (a ConfigError) with
    every problem and ``source`` = the file.

    Relative paths inside the file are taken relative to ``base_dir`` (default: the file's
    directory)."""
    file = Path(path)
    try:
        with file.open("rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise error(
            [ConfigProblem("", f"cannot read {file}: {exc.strerror}")], source=str(file)
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise error([ConfigProblem("", f"not valid TOML: {exc}")], source=str(file)) from exc
    try:
        return load_tree(
            cls, data, base_dir=file.parent if base_dir is None else base_dir, expanduser=expanduser
        )
    except ConfigError as exc:
        raise error(exc.problems, source=str(file)) from None


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

    Arrays of tables appear as ``lanes[]``; tables of tables keyed by a name as
    ``time_profiles.NAME``; a tagged union's variants each as ``lanes[].scanner`` with their
    own class."""
    hints = _hints(cls)
    fields = [(f, hints[f.name]) for f in _init_fields(cls)]
    yield path, cls, fields
    for f, tp in fields:
        sub_path = join_path(path, f.name)
        inner = _unwrap_optional(tp)
        if typing.get_origin(inner) in (tuple, frozenset):
            inner = typing.get_args(inner)[0]
            sub_path += "[]"
        elif typing.get_origin(inner) in (dict, Mapping):
            inner = typing.get_args(inner)[1]
            sub_path += ".NAME"
        variants = _variants(inner)
        if variants:
            for variant in variants:
                yield from iter_settings(variant, sub_path)
        elif dataclasses.is_dataclass(inner):
            yield from iter_settings(typing.cast(type, inner), sub_path)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def settings_markdown(cls: type, intro: str, *, full_keys: bool = False) -> str:
    """Every setting of the tree ``cls`` as Markdown: ``intro``, then one table per section
    (headed by its key path and the first line of its docstring). ``full_keys`` names each
    row by its whole key path (``retention.days``) rather than by its key (``days``)."""
    out = [intro]
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
            name = join_path(path, f.name) if full_keys else f.name
            help_text = _cell(str(f.metadata.get("help", "")))
            if len(help_text) < 3:
                raise TypeError(f"setting {join_path(path, f.name)!r} has no help text")
            type_text = _cell(_type_text(tp, f.metadata))
            out.append(f"| `{name}` | {type_text} | {_default_text(f)} | {help_text} |")
    return "\n".join(out) + "\n"
