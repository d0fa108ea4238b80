"""Checks and key/secret readers shared by the gateway's settings sections."""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519, x25519
from cryptography.hazmat.primitives.serialization import load_der_public_key

from suishen.settings import ConfigError, ConfigProblem, SettingError, join_path

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_id(key: str, value: str) -> None:
    if not _ID.fullmatch(value):
        raise SettingError(key, f"must be 1-64 letters, digits, '_', '.' or '-', got {value!r}")


def one_of(section: object, *keys: str, required: bool = True) -> None:
    given = [k for k in keys if getattr(section, k) is not None]
    if len(given) > 1:
        raise SettingError(given[1], f"set only one of {', '.join(keys)}")
    if required and not given:
        raise SettingError(keys[0], f"missing required setting (or set {', '.join(keys[1:])})")


def check_env_name(key: str, value: str | None) -> None:
    if value is not None and not _ENV_NAME.fullmatch(value):
        raise SettingError(key, f"must be an environment variable name, got {value!r}")


def b64_key(key: str, text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SettingError(key, "must be base64") from None


def ed25519_key(der: bytes, key: str) -> ed25519.Ed25519PublicKey:
    try:
        public = load_der_public_key(der)
    except ValueError:
        raise SettingError(key, "is not a DER SubjectPublicKeyInfo") from None
    if not isinstance(public, ed25519.Ed25519PublicKey):
        raise SettingError(key, "must be an Ed25519 public key")
    return public


def x25519_key(der_or_raw: bytes, key: str) -> x25519.X25519PublicKey:
    if len(der_or_raw) == 32:
        return x25519.X25519PublicKey.from_public_bytes(der_or_raw)
    try:
        public = load_der_public_key(der_or_raw)
    except ValueError:
        raise SettingError(key, "is neither 32 raw bytes nor a DER SubjectPublicKeyInfo") from None
    if not isinstance(public, x25519.X25519PublicKey):
        raise SettingError(key, "must be an X25519 public key")
    return public


def read_key_file(path: Path, config_key: str) -> bytes:
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


def as_config_error(exc: SettingError, section: str) -> ConfigError:
    return ConfigError([ConfigProblem(join_path(section, k), m) for k, m in exc.problems])


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
