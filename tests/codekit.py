"""Build signed code envelopes part by part, for tests that put odd values in one position."""

from __future__ import annotations

import zlib
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from suishen.protocol import base45
from suishen.protocol.cose import EDDSA, ES256, PrivateKey, kid_of, sig_structure, spki_der
from tests.conftest import NOW

SSC1_BODY: dict[str, Any] = {
    "v": 1,
    "idt": "RIC",
    "idn": "11010519491231002X",
    "nat": "CHN",
    "nm": "张三明",
    "dob": "1949-12-31",
    "st": "G",
}
DCC_BODY: dict[str, Any] = {
    "ver": "1.3.0",
    "nam": {"fn": "Musterfrau", "gn": "Erika"},
    "dob": "1964-08-12",
    "v": [{"tg": "840539006", "dn": 2, "sd": 2}],
}


def kid(key: PrivateKey) -> bytes:
    return kid_of(spki_der(key.public_key()))


def alg(key: PrivateKey) -> int:
    return EDDSA if isinstance(key, ed25519.Ed25519PrivateKey) else ES256


def ssc1_claims(**overrides: Any) -> dict[Any, Any]:
    claims: dict[Any, Any] = {1: "CN-SH", 6: NOW - 10, 4: NOW + 110, 7: bytes(range(16))}
    claims[-261] = dict(SSC1_BODY)
    claims.update(overrides)
    return claims


def hc1_claims(**overrides: Any) -> dict[Any, Any]:
    claims: dict[Any, Any] = {1: "CN-SH", 6: NOW - 86400, 4: NOW + 86400 * 30}
    claims[-260] = {1: dict(DCC_BODY)}
    claims.update(overrides)
    return claims


def raw_signature(key: Any, protected_raw: bytes, payload: bytes) -> bytes:
    """An ES256 (r||s) or EdDSA signature over the Sig_structure of these bytes."""
    tbs = sig_structure(protected_raw, payload)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(tbs)
    r, s = decode_dss_signature(key.sign(tbs, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def wrap(cose: bytes, prefix: str = "SSC1:") -> str:
    return prefix + base45.encode(zlib.compress(cose))


def envelope(
    key: PrivateKey,
    *,
    payload: bytes,
    protected: Any = None,
    protected_raw: bytes | None = None,
    unprotected: Any = None,
    prefix: str = "SSC1:",
) -> str:
    """A tagged COSE_Sign1 QR text, signed by `key` over whatever headers and payload given.

    By default the protected header is {alg, kid} of the key and the unprotected one empty.
    """
    if protected_raw is None:
        protected_raw = cbor2.dumps({1: alg(key), 4: kid(key)} if protected is None else protected)
    body = [protected_raw, {} if unprotected is None else unprotected, payload]
    body.append(raw_signature(key, protected_raw, payload))
    return wrap(cbor2.dumps(cbor2.CBORTag(18, body)), prefix)
