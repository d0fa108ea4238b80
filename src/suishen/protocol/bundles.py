"""Signed bundles: lists the hub sends down to gateways (trust list, watchlist, site roster).

A bundle is a COSE_Sign1 (EdDSA, by the hub's bundle key, which each gateway pins) whose
payload is the CBOR map {"kind": text, "version": uint, "issued_at": uint, "body": any}.
open_bundle() refuses, with a BundleError naming the problem, a bundle that is malformed
("malformed"), signed by another key or badly ("bad_signature"), of another kind
("wrong_kind"), or not newer than the version the gateway holds ("stale").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import cbor2
from cryptography.hazmat.primitives.asymmetric import ed25519

from suishen.protocol.cose import (
    CBOR_ERRORS,
    EDDSA,
    Sign1,
    decode_sign1,
    kid_of,
    sig_structure,
    sign1,
    spki_der,
    verify_signature,
)
from suishen.protocol.errors import BundleError, DecodeError
from suishen.protocol.vocabulary import BundleKind, values

BUNDLE_KINDS: Final = values(BundleKind)
MAX_BUNDLE_BYTES: Final = 256 * 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class Bundle:
    kind: str
    version: int
    issued_at: int
    body: Any


def seal_bundle(
    *, kind: str, version: int, issued_at: int, body: Any, key: ed25519.Ed25519PrivateKey
) -> bytes:
    """Sign a bundle with the hub's Ed25519 bundle key."""
    if kind not in BUNDLE_KINDS:
        raise ValueError(f"bundle kind must be one of {sorted(BUNDLE_KINDS)}")
    if version < 1:
        raise ValueError("bundle version must be >= 1")
    payload = cbor2.dumps({"kind": kind, "version": version, "issued_at": issued_at, "body": body})
    return sign1(payload=payload, key=key, kid=kid_of(spki_der(key.public_key())))


def _bstr_head(n: int) -> bytes:
    """The CBOR head of a byte string of n bytes."""
    if n < 24:
        return bytes((0x40 | n,))
    if n < 0x100:
        return bytes((0x58, n))
    if n < 0x10000:
        return b"\x59" + n.to_bytes(2, "big")
    if n < 0x100000000:
        return b"\x5a" + n.to_bytes(4, "big")
    return b"\x5b" + n.to_bytes(8, "big")


def _to_be_signed(message: Sign1) -> bytes:
    """cose.sig_structure(message.protected_raw, message.payload), copying the payload once.

    A 1,000,000-entry watchlist bundle is ~39 MB and the gateway holds the file's bytes and
    the decoded payload while it checks the signature; sig_structure's two concatenations
    would add two more copies to the peak RSS (bench/gateway.py (c)), this adds one.
    """
    head = sig_structure(message.protected_raw, b"")[:-1]  # up to the payload's bstr head
    return b"".join((head, _bstr_head(len(message.payload)), message.payload))


def open_bundle(
    data: bytes,
    *,
    pinned_key: ed25519.Ed25519PublicKey,
    kind: str,
    newer_than: int = 0,
) -> Bundle:
    """Verify and decode a bundle; refuse it unless it is `kind` and newer than `newer_than`."""
    if len(data) > MAX_BUNDLE_BYTES:
        raise BundleError("malformed", "bundle is larger than the limit")
    try:
        message = decode_sign1(data)
    except DecodeError as exc:
        raise BundleError("malformed", f"bundle is not a COSE_Sign1: {exc}") from exc
    if message.alg != EDDSA or not verify_signature(
        message.alg, pinned_key, message.signature, _to_be_signed(message)
    ):
        raise BundleError("bad_signature", "bundle is not signed by the pinned hub key")
    try:
        content = cbor2.loads(message.payload)
    except CBOR_ERRORS as exc:
        raise BundleError("malformed", "bundle payload is not CBOR") from exc
    if not isinstance(content, dict):
        raise BundleError("malformed", "bundle payload is not a map")
    version, issued_at = content.get("version"), content.get("issued_at")
    if not isinstance(version, int) or not isinstance(issued_at, int) or "body" not in content:
        raise BundleError("malformed", "bundle needs version, issued_at and body")
    if content.get("kind") != kind:
        raise BundleError("wrong_kind", f"bundle is {content.get('kind')!r}, not {kind!r}")
    if version <= newer_than:
        raise BundleError("stale", f"bundle version {version} is not newer than {newer_than}")
    return Bundle(kind=kind, version=version, issued_at=issued_at, body=content["body"])
