"""COSE_Sign1 (RFC 9052) decode, verify and sign, for ES256 (P-256) and EdDSA (Ed25519).

PS256 (RSASSA-PSS, RFC 8230) is verified too, because the EU DCC (HC1) allows it; which
algorithms a format accepts is the caller's choice (SSC1: ES256 and EdDSA only). We never sign
with RSA.

- Sig_structure per RFC 9052 §4.4: ["Signature1", body_protected, external_aad, payload],
  built by hand (four byte strings behind a fixed head) because it is on every scan's path.
  body_protected is the protected bucket exactly as received on the wire.
- ES256 signatures are raw r||s (64 bytes), never DER; EdDSA signatures are 64 bytes.
- The algorithm must match the key: ES256 needs a P-256 key, EdDSA an Ed25519 key.
- A COSE_Sign1 may sit inside a CWT tag (61), as some DCC issuers send it.
- alg and kid are taken from the protected bucket, else from the unprotected one (the DCC
  allows kid in either); a message is accepted tagged (18) or untagged, any other tag is not.
- Decoding uses protocol.cbor (no semantic tags, bounded nesting), so a message is only ever
  plain CBOR values; alg must be an integer and kid a byte string.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

from suishen.protocol import cbor
from suishen.protocol.errors import DecodeError, SigningError
from suishen.protocol.reasons import Reason

ES256: Final = -7
EDDSA: Final = -8
PS256: Final = -37
ALG_NAMES: Final = {ES256: "ES256", EDDSA: "EdDSA", PS256: "PS256"}
ALG_BY_NAME: Final = {name: alg for alg, name in ALG_NAMES.items()}

COSE_SIGN1_TAG: Final = 18
CWT_TAG: Final = 61
HEADER_ALG: Final = 1
HEADER_KID: Final = 4

PublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey
PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey

# Errors cbor2 raises for bad input (decimal errors from tags 4 and 5 are ArithmeticErrors);
# callers that still decode with cbor2 map them to a rejection. Codes use protocol.cbor.
CBOR_ERRORS: Final = (
    cbor2.CBORDecodeError,
    ValueError,
    ArithmeticError,
    TypeError,
    OverflowError,
    RecursionError,
    MemoryError,
    LookupError,
)

_ECDSA_SHA256: Final = ec.ECDSA(hashes.SHA256())
_PSS_SHA256: Final = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
_SIG1_HEAD: Final = b"\x84\x6aSignature1"


@dataclass(frozen=True, slots=True, kw_only=True)
class Sign1:
    """A decoded COSE_Sign1 message (not yet verified)."""

    protected_raw: bytes
    alg: int
    kid: bytes  # b"" when the message has none
    payload: bytes
    signature: bytes


def _bstr(data: bytes) -> bytes:
    n = len(data)
    if n < 24:
        return bytes((0x40 | n,)) + data
    if n < 0x100:
        return bytes((0x58, n)) + data
    if n < 0x10000:
        return b"\x59" + n.to_bytes(2, "big") + data
    return b"\x5a" + n.to_bytes(4, "big") + data


_SIG_PREFIX_CACHE: dict[bytes, bytes] = {}


def sig_structure(protected_raw: bytes, payload: bytes, external_aad: bytes = b"") -> bytes:
    """The bytes a COSE_Sign1 signature covers (RFC 9052 §4.4)."""
    if external_aad:
        return _SIG1_HEAD + _bstr(protected_raw) + _bstr(external_aad) + _bstr(payload)
    prefix = _SIG_PREFIX_CACHE.get(protected_raw)
    if prefix is None:  # the same few protected headers recur: keep their prefix
        prefix = _SIG1_HEAD + _bstr(protected_raw) + b"\x40"
        if len(protected_raw) <= 64:
            if len(_SIG_PREFIX_CACHE) >= _PROTECTED_CACHE_MAX:
                _SIG_PREFIX_CACHE.clear()
            _SIG_PREFIX_CACHE[protected_raw] = prefix
    return prefix + _bstr(payload)


def _malformed(message: str) -> DecodeError:
    return DecodeError(Reason.MALFORMED_COSE, message)


def decode_sign1(data: bytes) -> Sign1:
    """Parse a COSE_Sign1; raise DecodeError (malformed_cose / unsupported_alg) if unusable."""
    message = _decode_common_shape(data)
    if message is not None:
        return message
    try:
        obj = cbor.loads(data)
    except cbor.CBORInvalid as exc:
        raise _malformed(f"not CBOR: {exc}") from exc
    if isinstance(obj, cbor2.CBORTag) and obj.tag == CWT_TAG:
        obj = obj.value
    if isinstance(obj, cbor2.CBORTag):
        if obj.tag != COSE_SIGN1_TAG:
            raise _malformed(f"CBOR tag {obj.tag} is not COSE_Sign1 (18)")
        obj = obj.value
    if not isinstance(obj, list) or len(obj) != 4:
        raise _malformed("COSE_Sign1 is not an array of four")
    protected_raw, unprotected, payload, signature = obj
    if not isinstance(protected_raw, bytes):
        raise _malformed("protected header is not a byte string")
    if not isinstance(unprotected, dict):
        raise _malformed("unprotected header is not a map")
    if not isinstance(payload, bytes):
        raise _malformed("payload is missing (detached payloads are not supported)")
    if not isinstance(signature, bytes):
        raise _malformed("signature is not a byte string")
    protected = _protected_map(protected_raw)
    alg = protected.get(HEADER_ALG)
    if alg is None:
        alg = unprotected.get(HEADER_ALG)
    if alg is None:
        raise _malformed("no alg header")
    if type(alg) is not int:
        if isinstance(alg, str):  # a registered name, e.g. "ES256": valid COSE, not ours
            raise DecodeError(Reason.UNSUPPORTED_ALG, "alg is a text name, not ES256/EdDSA/PS256")
        raise _malformed("alg header is not an integer")
    if alg not in ALG_NAMES:
        raise DecodeError(Reason.UNSUPPORTED_ALG, f"alg {alg!r} is not ES256, EdDSA or PS256")
    kid = protected.get(HEADER_KID)
    if kid is None:
        kid = unprotected.get(HEADER_KID)
    if kid is None:
        kid = b""  # allowed by COSE; a code verifier then finds no key (unknown_kid)
    elif not isinstance(kid, bytes):
        raise _malformed("kid header is not a byte string")
    if not unprotected and len(protected_raw) < 24 and kid:
        # alg and kid came from these protected bytes alone: the common shape may reuse them.
        if len(_HEADERS_CACHE) >= _PROTECTED_CACHE_MAX:
            _HEADERS_CACHE.clear()
        _HEADERS_CACHE[protected_raw] = (alg, kid, _SIG1_HEAD + _bstr(protected_raw) + b"\x40")
    return Sign1(
        protected_raw=protected_raw, alg=alg, kid=kid, payload=payload, signature=signature
    )


# (alg, kid, Sig_structure prefix) of protected header bytes that decode_sign1 has accepted
# with an empty unprotected map: what the generic path would find again for the same bytes,
# and the bytes a signature over them covers before the payload (no external_aad).
_HEADERS_CACHE: dict[bytes, tuple[int, bytes, bytes]] = {}
_SIGNATURE_TAIL: Final = b"\x58\x40"  # a byte string of 64 bytes: ES256 r||s, Ed25519


def _decode_common_shape(data: bytes) -> Sign1 | None:
    """The Sign1 of common_shape's parts, or None (then the generic path decodes)."""
    parts = common_shape(data)
    if parts is None:
        return None
    protected_raw, alg, kid, payload, signature, _ = parts
    return Sign1(
        protected_raw=protected_raw, alg=alg, kid=kid, payload=payload, signature=signature
    )


def common_shape(data: bytes) -> tuple[bytes, int, bytes, bytes, bytes, bytes] | None:
    """(protected bytes, alg, kid, payload, signature, Sig_structure) of the fixed outer shape
    every issuer key of ours produces, read without a CBOR decoder: [tag 18] array of 4:
    protected bytes (< 24, seen before), {}, payload bytes (24..65535), 64-byte signature,
    nothing after. Anything else (or not yet seen) returns None and takes the generic path,
    which gives the same Sign1 for these bytes. The Sig_structure is sig_structure(protected,
    payload): the cached prefix and the payload with its head as received when that head is
    the shortest form (as CBOR's deterministic encoding, and so sig_structure, writes it)."""
    try:
        pos = 2 if data[0] == 0xD2 and data[1] == 0x84 else 1 if data[0] == 0x84 else 0
        if not pos:
            return None
        head = data[pos]
        if not 0x40 < head < 0x58:
            return None
        start = pos + 1
        pos = start + head - 0x40
        protected_raw = data[start:pos]
        headers = _HEADERS_CACHE.get(protected_raw)
        if headers is None or data[pos] != 0xA0:
            return None
        head = data[pos + 1]
        if head == 0x58:
            start = pos + 3
            size = data[pos + 2]
            shortest = size >= 24
        elif head == 0x59:
            start = pos + 4
            size = (data[pos + 2] << 8) | data[pos + 3]
            shortest = size >= 0x100
        else:
            return None
        end = start + size
        if end + 66 != len(data) or data[end : end + 2] != _SIGNATURE_TAIL:
            return None
    except IndexError:
        return None
    alg, kid, prefix = headers
    payload = data[start:end]
    tbs = prefix + (data[pos + 1 : end] if shortest else _bstr(payload))
    return protected_raw, alg, kid, payload, data[end + 2 :], tbs


# Every code of one issuer key carries the same protected bytes: parse them once.
_PROTECTED_CACHE: dict[bytes, dict[Any, Any]] = {}
_PROTECTED_CACHE_MAX = 1024


def _protected_map(protected_raw: bytes) -> dict[Any, Any]:
    cached = _PROTECTED_CACHE.get(protected_raw)
    if cached is not None:
        return cached
    if not protected_raw:
        return {}
    try:
        protected = cbor.loads(protected_raw)
    except cbor.CBORInvalid as exc:
        raise _malformed(f"protected header is not CBOR: {exc}") from exc
    if not isinstance(protected, dict):
        raise _malformed("protected header is not a map")
    if len(protected_raw) <= 64 and all(
        isinstance(v, int | bytes | str) for v in protected.values()
    ):  # only small, immutable-valued headers are shared
        if len(_PROTECTED_CACHE) >= _PROTECTED_CACHE_MAX:
            _PROTECTED_CACHE.clear()
        _PROTECTED_CACHE[protected_raw] = protected
    return protected


def key_fits_alg(alg: int, key: PublicKey) -> bool:
    """True if `key` can verify signatures of algorithm `alg`."""
    if alg == ES256:
        return isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1)
    if alg == EDDSA:
        return isinstance(key, ed25519.Ed25519PublicKey)
    if alg == PS256:
        return isinstance(key, rsa.RSAPublicKey)
    return False


def verify_signature(alg: int, key: PublicKey, signature: bytes, to_be_signed: bytes) -> bool:
    """Check a raw COSE signature; False for a wrong key type, form, length or value."""
    if alg == PS256:
        return _verify_pss(key, signature, to_be_signed)
    if len(signature) != 64:
        return False
    try:
        if alg == ES256 and isinstance(key, ec.EllipticCurvePublicKey):
            if not isinstance(key.curve, ec.SECP256R1):
                return False
            der = encode_dss_signature(
                int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
            )
            key.verify(der, to_be_signed, _ECDSA_SHA256)
            return True
        if alg == EDDSA and isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, to_be_signed)
            return True
    except (InvalidSignature, ValueError):
        return False
    return False


# DER (SEQUENCE of two INTEGERs) heads for r||s where neither half has a leading zero byte
# (255 signatures in 256 per half): indexed by (r's high bit, s's high bit), each pair is the
# bytes before r and the bytes between r and s; a set high bit needs a 0x00 (INTEGERs are signed).
_DER_PARTS: Final = (
    (b"\x30\x44\x02\x20", b"\x02\x20"),
    (b"\x30\x45\x02\x20", b"\x02\x21\x00"),
    (b"\x30\x45\x02\x21\x00", b"\x02\x20"),
    (b"\x30\x46\x02\x21\x00", b"\x02\x21\x00"),
)


def raw_to_der(signature: bytes) -> bytes:
    """A 64-byte ES256 r||s as the DER that cryptography verifies: the same bytes as
    encode_dss_signature of the two halves, by byte operations for the common case."""
    r_head, s_head = signature[0], signature[32]
    if r_head and s_head:
        head, middle = _DER_PARTS[(r_head >> 7) << 1 | s_head >> 7]
        return head + signature[:32] + middle + signature[32:]
    return encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )


SignatureCheck = Callable[[int, bytes, bytes], bool]


def make_verifier(key: PublicKey) -> SignatureCheck:
    """A signature check bound to one key: (alg, raw signature, to-be-signed) -> bool.

    The key's type and curve are examined once here instead of on every scan; the check
    refuses an algorithm the key does not fit, like verify_signature.
    """
    if isinstance(key, ed25519.Ed25519PublicKey):
        verify_ed = key.verify

        def check_ed(alg: int, signature: bytes, to_be_signed: bytes) -> bool:
            if alg != EDDSA or len(signature) != 64:
                return False
            try:
                verify_ed(signature, to_be_signed)
            except InvalidSignature:
                return False
            return True

        return check_ed
    if isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        verify_ec = key.verify

        def check_es(alg: int, signature: bytes, to_be_signed: bytes) -> bool:
            if alg != ES256 or len(signature) != 64:
                return False
            try:
                verify_ec(raw_to_der(signature), to_be_signed, _ECDSA_SHA256)
            except (InvalidSignature, ValueError):
                return False
            return True

        return check_es

    def check_other(alg: int, signature: bytes, to_be_signed: bytes) -> bool:
        return verify_signature(alg, key, signature, to_be_signed)

    return check_other


def _verify_pss(key: PublicKey, signature: bytes, to_be_signed: bytes) -> bool:
    if not isinstance(key, rsa.RSAPublicKey) or len(signature) != (key.key_size + 7) // 8:
        return False
    try:
        key.verify(signature, to_be_signed, _PSS_SHA256, hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


def verify_sign1(message: Sign1, key: PublicKey, external_aad: bytes = b"") -> bool:
    """Verify a decoded COSE_Sign1 with `key`."""
    tbs = sig_structure(message.protected_raw, message.payload, external_aad)
    return verify_signature(message.alg, key, message.signature, tbs)


def alg_for_key(key: PrivateKey | PublicKey) -> int:
    """The COSE algorithm a key signs with (ES256 for P-256, EdDSA for Ed25519)."""
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return EDDSA
    if isinstance(key, rsa.RSAPublicKey):
        raise SigningError("RSA keys are verified (PS256, HC1) but never used to sign")
    if isinstance(key.curve, ec.SECP256R1):
        return ES256
    raise SigningError(f"curve {key.curve.name} is not P-256; only ES256 and EdDSA are supported")


def sign1(
    *,
    payload: bytes,
    key: PrivateKey,
    kid: bytes,
    external_aad: bytes = b"",
    tagged: bool = True,
) -> bytes:
    """Make a COSE_Sign1 over `payload` with protected header {alg, kid}."""
    alg = alg_for_key(key)
    protected_raw = cbor2.dumps({HEADER_ALG: alg, HEADER_KID: kid}, canonical=True)
    tbs = sig_structure(protected_raw, payload, external_aad)
    if isinstance(key, ed25519.Ed25519PrivateKey):
        signature = key.sign(tbs)
    else:
        r, s = decode_dss_signature(key.sign(tbs, _ECDSA_SHA256))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    body = [protected_raw, {}, payload, signature]
    return cbor2.dumps(cbor2.CBORTag(COSE_SIGN1_TAG, body) if tagged else body)


def spki_der(key: PublicKey) -> bytes:
    """The DER SubjectPublicKeyInfo of a public key."""
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def kid_of(der: bytes) -> bytes:
    """DESIGN §3 kid rule: the first 8 bytes of SHA-256 of the anchor's DER."""
    return hashlib.sha256(der).digest()[:8]
