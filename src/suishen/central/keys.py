"""The hub's own keys, in its state directory (DESIGN §4, §6).

- the bundle key (Ed25519) signs the trust list, watchlist and roster bundles; gateways pin
  its public half (gateway config ``lists.bundle_key_file``);
- the sealing key (X25519) opens the identities gateways seal to the hub; gateways hold its
  public half (gateway config ``privacy.hub_seal_key_file``).

Files (written atomically; private keys PKCS#8 PEM, mode 0600; public keys SPKI PEM, 0644)::

    <state_dir>/keys/bundle.key  bundle.pub.pem
    <state_dir>/keys/seal.key    seal.pub.pem

``init_keys`` refuses to replace existing keys unless forced: a new bundle key makes every
gateway refuse the hub's bundles until re-pinned, and a new sealing key cannot open records
sealed to the old one.

Exceptions::

    HubKeyError                  a key file is missing, unreadable, or of the wrong kind
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519

from suishen.sync.files import write_atomic

KEYS_DIR = "keys"


class HubKeyError(Exception):
    """A hub key file is missing, unreadable, or of the wrong kind."""


@dataclasses.dataclass(frozen=True, slots=True)
class HubKeyFiles:
    """Where the hub's keys live under its state directory."""

    state_dir: Path

    @property
    def directory(self) -> Path:
        return self.state_dir / KEYS_DIR

    @property
    def bundle_key(self) -> Path:
        return self.directory / "bundle.key"

    @property
    def bundle_public(self) -> Path:
        return self.directory / "bundle.pub.pem"

    @property
    def seal_key(self) -> Path:
        return self.directory / "seal.key"

    @property
    def seal_public(self) -> Path:
        return self.directory / "seal.pub.pem"


def _private_pem(key: ed25519.Ed25519PrivateKey | x25519.X25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _public_pem(key: ed25519.Ed25519PublicKey | x25519.X25519PublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def init_keys(state_dir: Path, *, force: bool = False) -> HubKeyFiles:
    """Make the bundle and sealing keys (and their public PEM files) in ``state_dir``."""
    files = HubKeyFiles(Path(state_dir))
    existing = [p for p in (files.bundle_key, files.seal_key) if p.exists()]
    if existing and not force:
        raise HubKeyError(
            f"hub keys already exist ({', '.join(str(p) for p in existing)}); replacing them "
            "breaks every gateway's pinned key and old sealed records (use --force)"
        )
    bundle = ed25519.Ed25519PrivateKey.generate()
    seal = x25519.X25519PrivateKey.generate()
    write_atomic(files.bundle_key, _private_pem(bundle), mode=0o600, dir_mode=0o700)
    write_atomic(files.bundle_public, _public_pem(bundle.public_key()), mode=0o644, dir_mode=0o700)
    write_atomic(files.seal_key, _private_pem(seal), mode=0o600, dir_mode=0o700)
    write_atomic(files.seal_public, _public_pem(seal.public_key()), mode=0o644, dir_mode=0o700)
    return files


def _load_private(path: Path) -> object:
    try:
        return serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise HubKeyError(f"no key at {path}: run `suishen hub keys init` first") from None
    except (OSError, ValueError, TypeError) as exc:
        raise HubKeyError(f"cannot read key {path}: {exc}") from exc


def load_bundle_key(state_dir: Path) -> ed25519.Ed25519PrivateKey:
    """The hub's Ed25519 bundle-signing key."""
    path = HubKeyFiles(Path(state_dir)).bundle_key
    key = _load_private(path)
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise HubKeyError(f"{path}: not an Ed25519 private key")
    return key


def load_seal_key(state_dir: Path) -> x25519.X25519PrivateKey:
    """The hub's X25519 sealing key (opens sealed identities)."""
    path = HubKeyFiles(Path(state_dir)).seal_key
    key = _load_private(path)
    if not isinstance(key, x25519.X25519PrivateKey):
        raise HubKeyError(f"{path}: not an X25519 private key")
    return key
