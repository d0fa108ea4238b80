"""The Suishen code (SSC1) and the EU DCC (HC1): issue and verify (DESIGN §3).

QR text = PREFIX + base45(zlib(COSE_Sign1(CWT claims))). verify() turns any text into either
a VerifiedCode or a Rejection carrying exactly one Reason; it never raises for bad input.
Each step is also callable on its own (unwrap, check_signature, decode_claims, check_issuer,
check_times), so conformance tests can check each published expectation at its own step.
"""

from __future__ import annotations

import math
import re
import struct
import zlib
from collections.abc import Mapping
from typing import Any, Final

import cbor2

from suishen.protocol import base45, cbor
from suishen.protocol.code_records import (
    CLAIM_CTI,
    CLAIM_EXP,
    CLAIM_HCERT,
    CLAIM_IAT,
    CLAIM_ISS,
    CLAIM_SSC,
    CTI_LENGTH,
    DEFAULT_OPTIONS,
    DOCUMENT_TYPES,
    HC1,
    IDENTITY_FIELDS,
    PREFIXES,
    SSC1,
    STATUS_COLOURS,
    Claims,
    Identity,
    Rejection,
    VerifiedCode,
    VerifyOptions,
)
from suishen.protocol.cose import (
    PrivateKey,
    Sign1,
    common_shape,
    decode_sign1,
    sig_structure,
    sign1,
)
from suishen.protocol.errors import CodeRejected, DecodeError
from suishen.protocol.reasons import Reason
from suishen.protocol.trust import TrustedKey, TrustList

__all__ = [  # the records live in code_records; callers import them from here or there
    "CLAIM_CTI",
    "CLAIM_EXP",
    "CLAIM_HCERT",
    "CLAIM_IAT",
    "CLAIM_ISS",
    "CLAIM_SSC",
    "CTI_LENGTH",
    "DEFAULT_OPTIONS",
    "DOCUMENT_TYPES",
    "HC1",
    "IDENTITY_FIELDS",
    "PREFIXES",
    "SSC1",
    "STATUS_COLOURS",
    "Claims",
    "Identity",
    "Rejection",
    "VerifiedCode",
    "VerifyOptions",
    "check_alg",
    "check_issuer",
    "check_signature",
    "check_times",
    "dcc_type",
    "decode_claims",
    "encode_code",
    "issue_ssc1",
    "unwrap",
    "verify",
]

_TIME_LIMIT: Final = 2**40  # seconds; anything beyond is not a time

# --------------------------------------------------------------------------- steps


def unwrap(text: str, options: VerifyOptions = DEFAULT_OPTIONS) -> tuple[str, bytes]:
    """QR text -> (format, COSE bytes): prefix, size, base45 and zlib checks."""
    if len(text) > options.max_text_chars:
        raise DecodeError(Reason.OVERSIZE, f"QR text longer than {options.max_text_chars}")
    if text.startswith("SSC1:"):
        fmt, body = SSC1, text[5:]
    elif text.startswith("HC1:"):
        fmt, body = HC1, text[4:]
    else:
        raise DecodeError(Reason.MALFORMED_PREFIX, "text does not start with SSC1: or HC1:")
    if fmt not in options.formats:
        raise CodeRejected(Reason.FORMAT_NOT_ACCEPTED, f"{fmt} codes are not accepted here")
    compressed = base45.decode(body)
    decompressor = zlib.decompressobj()
    try:
        cose = decompressor.decompress(compressed, options.max_payload_bytes + 1)
    except zlib.error as exc:
        raise DecodeError(Reason.MALFORMED_ZLIB, "payload is not zlib data") from exc
    if len(cose) > options.max_payload_bytes:
        raise DecodeError(Reason.OVERSIZE, "decompressed payload exceeds the limit")
    if not decompressor.eof:
        raise DecodeError(Reason.MALFORMED_ZLIB, "zlib stream is truncated")
    return fmt, cose


def check_alg(fmt: str, message: Sign1, options: VerifyOptions = DEFAULT_OPTIONS) -> None:
    if message.alg not in options.algorithms.get(fmt, ()):
        raise CodeRejected(Reason.UNSUPPORTED_ALG, f"{fmt} codes may not use alg {message.alg}")


def check_signature(
    message: Sign1, fmt: str, trust: TrustList, now: float, external_aad: bytes = b""
) -> TrustedKey:
    """Find the key by kid and check validity, format and signature; return the key."""
    candidates = trust.candidates(message.kid)
    if not candidates:
        raise CodeRejected(Reason.UNKNOWN_KID, "no trusted key has this kid")
    tbs = sig_structure(message.protected_raw, message.payload, external_aad)
    reason, detail = Reason.BAD_SIGNATURE, "signature does not verify"
    for key in candidates:  # almost always one
        if not key.valid_at(now):
            reason, detail = Reason.KEY_NOT_VALID, "now is outside the key's validity"
            continue
        if fmt not in key.formats:
            reason, detail = Reason.ISSUER_NOT_TRUSTED, f"key is not trusted for {fmt}"
            continue
        if key.verifier(message.alg, message.signature, tbs):
            return key
        reason, detail = Reason.BAD_SIGNATURE, "signature does not verify"
    raise CodeRejected(reason, detail)


def _bad_claims(message: str) -> DecodeError:
    return DecodeError(Reason.MALFORMED_CLAIMS, message)


def _time_claim(claims: Mapping[Any, Any], label: int, name: str) -> int | None:
    value = claims.get(label)
    if type(value) is int:  # the usual case (never a bool: type, not isinstance)
        if -_TIME_LIMIT < value < _TIME_LIMIT:
            return value
        raise _bad_claims(f"{name} is out of range")
    if value is None:
        return None
    if type(value) is not float:
        raise _bad_claims(f"{name} is not a number")
    if math.isnan(value) or abs(value) >= _TIME_LIMIT:
        raise _bad_claims(f"{name} is out of range")
    return int(value)


# The SSC1 payload as every issuer of ours writes it (issue_ssc1: cbor2, insertion order):
# {1: iss, 6: iat, 4: exp, 7: cti (16 bytes), -261: {"v": 1, "idt", "idn", "nat", "nm", "dob",
# "st"}}, times as four-byte unsigned integers. One regular expression reads it and checks the
# identity's ASCII fields as Identity does (idt one of the four, idn 1..32 ASCII letters or
# digits, nat three capitals, dob YYYY-MM-DD, st G/Y/R); what it cannot check, the declared
# lengths of the three variable texts (iss, idn, nm) and nm's UTF-8 and characters, is checked
# after the match. With those lengths equal, the match is the one parse a CBOR decoder makes.
_SSC1_SHAPE: Final = re.compile(
    rb"\xa5\x01([\x60-\x77])(.*?)"  # iss: head, text
    rb"\x06\x1a(.{4}\x04\x1a.{4})"  # iat, exp: four-byte unsigned (_TIMES)
    rb"\x07\x50(.{16})"  # cti: 16 bytes
    rb"\x39\x01\x04\xa7\x61v\x01"  # -261: a map of 7, "v": 1
    rb"\x63idt(?:\x63(RIC|HMT|FPR)|\x62(PP))"
    rb"\x63idn(?:([\x61-\x77])|\x78(.))([0-9A-Za-z]{1,32})"
    rb"\x63nat\x63([A-Z]{3})"
    rb"\x62nm(?:([\x61-\x77])|\x78(.)|\x79\x01\x00)(.+)"  # 64 characters: <= 256 bytes
    rb"\x63dob\x6a([0-9]{4}-[0-9]{2}-[0-9]{2})"
    rb"\x62st\x61([GYR])",
    re.DOTALL,
).fullmatch

_TIMES: Final = struct.Struct(">I2xI").unpack  # iat, 06 1a, exp
# Frozen records built on the hot path from values already checked as their __post_init__
# checks them: each slot set through its descriptor (what the dataclass __init__ does through
# object.__setattr__, at a third of the cost). Equal to the records the constructors build
# (property-tested); everything else still goes through the constructors.
_new: Final = object.__new__
_SET_IDT, _SET_IDN, _SET_NAT, _SET_NM, _SET_DOB, _SET_ST = (
    Identity.__dict__[name].__set__ for name in IDENTITY_FIELDS
)
_SET_ISS, _SET_IAT, _SET_EXP, _SET_CTI, _SET_BODY, _SET_IDENTITY = (
    Claims.__dict__[name].__set__ for name in ("iss", "iat", "exp", "cti", "body", "identity")
)
_SET_FORMAT, _SET_KID, _SET_CLAIMS = (
    VerifiedCode.__dict__[name].__set__ for name in ("format", "kid", "claims")
)


def _ssc1_fast_claims(p: bytes) -> Claims | None:
    """The Claims of a payload in the common SSC1 shape above whose identity passes Identity's
    checks, read without the generic decoder; None for anything else (a longer time, another
    key order, a long iss, an identity Identity refuses, invalid UTF-8, trailing bytes...),
    which then takes cbor.loads and _ssc1_claims. Where this returns Claims, the generic
    path builds equal Claims from the same bytes (property-tested over mutations)."""
    m = _SSC1_SHAPE(p)
    if m is None:
        return None
    (
        iss_head,
        iss,
        times,
        cti,
        idt3,
        idt2,
        idn_head,
        idn_long,
        idn,
        nat,
        nm_head,
        nm_long,
        nm,
        dob,
        st,
    ) = m.groups()
    if (
        len(iss) != iss_head[0] - 0x60
        or len(idn) != (idn_head[0] - 0x60 if idn_head is not None else idn_long[0])
        or len(nm)
        != (nm_head[0] - 0x60 if nm_head is not None else 256 if nm_long is None else nm_long[0])
    ):
        return None
    try:
        iss_text = iss.decode()
        nm_text = nm.decode()
    except UnicodeDecodeError:
        return None
    if len(nm_text) > 64 or not nm_text.isprintable():
        return None
    iat, exp = _TIMES(times)
    idt = (idt3 or idt2).decode()
    idn_text, nat_text, dob_text, st_text = idn.decode(), nat.decode(), dob.decode(), st.decode()
    identity = _new(Identity)
    _SET_IDT(identity, idt)
    _SET_IDN(identity, idn_text)
    _SET_NAT(identity, nat_text)
    _SET_NM(identity, nm_text)
    _SET_DOB(identity, dob_text)
    _SET_ST(identity, st_text)
    claims = _new(Claims)
    _SET_ISS(claims, iss_text)
    _SET_IAT(claims, iat)
    _SET_EXP(claims, exp)
    _SET_CTI(claims, cti)
    _SET_BODY(
        claims,
        {
            "v": 1,
            "idt": idt,
            "idn": idn_text,
            "nat": nat_text,
            "nm": nm_text,
            "dob": dob_text,
            "st": st_text,
        },
    )
    _SET_IDENTITY(claims, identity)
    return claims


def decode_claims(fmt: str, payload: bytes) -> Claims:
    """CWT payload -> Claims; raise DecodeError(malformed_claims) when unusable. The generic
    reader: verify()'s fused path reads the common SSC1 shape itself (_ssc1_fast_claims) and
    is held equal to this one."""
    try:
        claims = cbor.loads(payload)
    except cbor.CBORInvalid as exc:
        raise _bad_claims(f"payload is not CBOR: {exc}") from exc
    if not isinstance(claims, dict):
        raise _bad_claims("payload is not a claims map")
    iss = claims.get(CLAIM_ISS)
    if iss is not None and not isinstance(iss, str):
        raise _bad_claims("iss is not text")
    iat = claims.get(CLAIM_IAT)
    if type(iat) is not int or not -_TIME_LIMIT < iat < _TIME_LIMIT:  # else the usual case
        iat = _time_claim(claims, CLAIM_IAT, "iat")
    exp = claims.get(CLAIM_EXP)
    if type(exp) is not int or not -_TIME_LIMIT < exp < _TIME_LIMIT:
        exp = _time_claim(claims, CLAIM_EXP, "exp")
    cti = claims.get(CLAIM_CTI)
    if cti is not None and not isinstance(cti, bytes):
        raise _bad_claims("cti is not a byte string")
    if fmt == SSC1:
        return _ssc1_claims(claims, iss, iat, exp, cti)
    if exp is None:  # DCC verifiers require exp: without it a certificate would never expire
        raise _bad_claims("HC1 needs exp")
    hcert = claims.get(CLAIM_HCERT)
    if not isinstance(hcert, dict) or not isinstance(hcert.get(1), dict):
        raise _bad_claims("HC1 payload has no hcert (-260: {1: DCC}) map")
    return Claims(iss=iss, iat=iat, exp=exp, cti=cti, body=hcert[1])


def _ssc1_claims(
    claims: Mapping[Any, Any], iss: str | None, iat: int | None, exp: int | None, cti: Any
) -> Claims:
    if iss is None or iat is None or exp is None:
        raise _bad_claims("SSC1 needs iss, iat and exp")
    if not isinstance(cti, bytes) or len(cti) != CTI_LENGTH:
        raise _bad_claims(f"SSC1 cti must be {CTI_LENGTH} bytes")
    body = claims.get(CLAIM_SSC)
    if not isinstance(body, dict) or type(body.get("v")) is not int or body["v"] != 1:
        raise _bad_claims("SSC1 payload has no version-1 -261 map")
    try:
        identity = Identity(
            idt=body["idt"],
            idn=body["idn"],
            nat=body["nat"],
            nm=body["nm"],
            dob=body["dob"],
            st=body["st"],
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise _bad_claims(f"SSC1 identity: {exc}") from exc
    return Claims(iss=iss, iat=iat, exp=exp, cti=cti, body=body, identity=identity)


def dcc_type(body: Mapping[str, Any]) -> str | None:
    """The DCC certificate type: 'v' (vaccination), 't' (test) or 'r' (recovery)."""
    for kind in ("v", "t", "r"):
        if kind in body:
            return kind
    return None


def check_issuer(fmt: str, claims: Claims, key: TrustedKey) -> None:
    """The code's iss must be the key's issuer; a DCC's type must be in the key's usage."""
    if claims.iss is not None and claims.iss != key.issuer:
        raise CodeRejected(Reason.ISSUER_NOT_TRUSTED, "iss is not the issuer the key serves")
    if fmt == HC1 and key.key_usage is not None:
        kind = dcc_type(claims.body)
        if kind not in key.key_usage:
            raise CodeRejected(Reason.ISSUER_NOT_TRUSTED, "key may not sign this DCC type")


def check_times(
    fmt: str, claims: Claims, now: float, options: VerifyOptions = DEFAULT_OPTIONS
) -> None:
    """Lifetime, not-yet-valid and expiry, with the configured clock skew."""
    iat, exp, skew = claims.iat, claims.exp, options.clock_skew_s
    if iat is not None and exp is not None:
        if exp < iat:
            raise _bad_claims("exp is before iat")
        limit = options.max_lifetime_s.get(fmt)
        if limit is not None and exp - iat > limit:
            raise CodeRejected(Reason.VALIDITY_TOO_LONG, f"lifetime exceeds {limit} s")
    if iat is not None and iat > now + skew:
        raise CodeRejected(Reason.NOT_YET_VALID, "iat is in the future")
    if exp is not None and exp < now - skew:
        raise CodeRejected(Reason.EXPIRED, "code has expired")


# --------------------------------------------------------------------------- verify


_decompressobj: Final = zlib.decompressobj


def verify(
    text: str,
    trust: TrustList,
    now: float,
    options: VerifyOptions = DEFAULT_OPTIONS,
) -> VerifiedCode | Rejection:
    """Verify a scanned code offline. Never raises, for any text.

    Bad input is a Rejection with its reason; an unexpected exception (a bug) is a Rejection
    too, with internal=True, malformed_cose before the signature checks out and
    malformed_claims after, so a lane never stops on a scan.

    The SSC1 code of every scan takes one fused path, here: prefix -> base45 -> zlib -> the
    common COSE shape (cose.common_shape) -> its one key -> signature -> the common claims
    shape (_ssc1_fast_claims) -> issuer and times, with no intermediate records. Anything else
    is handed, before the signature check, to the step-by-step path (_verify_steps), which
    then gives its answer; a bad signature is answered here as check_signature answers it;
    after a good signature, anything but a valid code in the common claims shape gets what
    _verify_signed gives (so no input has its signature checked twice, barring a bug). The
    two paths give equal results for any input (property-tested).
    """
    try:
        if type(text) is not str or not text.startswith("SSC1:"):
            return _verify_steps(text, trust, now, options)
        if len(text) > options.max_text_chars or SSC1 not in options.formats:
            return _verify_steps(text, trust, now, options)
        compressed = base45.decode(text[5:])
        decompressor = _decompressobj()
        cose = decompressor.decompress(compressed, options.max_payload_bytes + 1)
        if len(cose) > options.max_payload_bytes or not decompressor.eof:
            return _verify_steps(text, trust, now, options)
        parts = common_shape(cose)
        if parts is None:
            return _verify_steps(text, trust, now, options)
        _, alg, kid, payload, signature, to_be_signed = parts
        key = trust.sole_keys.get(kid)
        if key is None or alg not in options.algorithms.get(SSC1, ()):
            return _verify_steps(text, trust, now, options)
        if not key.valid_at(now) or SSC1 not in key.formats:
            return _verify_steps(text, trust, now, options)
        if not key.verifier(alg, signature, to_be_signed):
            return Rejection(
                reason=Reason.BAD_SIGNATURE,
                detail="signature does not verify",
                format=SSC1,
                kid=kid,
            )
        claims = _ssc1_fast_claims(payload)
        if claims is None:
            return _verify_signed(SSC1, kid, key, payload, now=now, options=options)
        iat, exp = claims.iat, claims.exp
        limit = options.max_lifetime_s.get(SSC1)
        skew = options.clock_skew_s
        if (
            iat is None
            or exp is None
            or claims.iss != key.issuer
            or exp < iat
            or (limit is not None and exp - iat > limit)
            or iat > now + skew
            or exp < now - skew
        ):
            return _verify_signed(SSC1, kid, key, payload, now=now, options=options)
        code = _new(VerifiedCode)
        _SET_FORMAT(code, SSC1)
        _SET_KID(code, kid)
        _SET_CLAIMS(code, claims)
    except Exception:  # noqa: BLE001 - the step-by-step path meets the same input and says why
        return _verify_steps(text, trust, now, options)
    return code


def _verify_steps(
    text: str, trust: TrustList, now: float, options: VerifyOptions
) -> VerifiedCode | Rejection:
    """verify() one step at a time: any format, any shape."""
    kid: bytes | None = None
    try:
        fmt, cose = unwrap(text, options)
        message = decode_sign1(cose)
        kid = message.kid
        check_alg(fmt, message, options)
        key = check_signature(message, fmt, trust, now)
    except CodeRejected as exc:
        return Rejection(reason=exc.reason, detail=str(exc), format=_format_of(text), kid=kid)
    except Exception as exc:  # noqa: BLE001 - a bug must not stop the lane: reject, flag it
        return Rejection(
            reason=Reason.MALFORMED_COSE,
            detail=f"internal error: {type(exc).__name__}",
            format=_format_of(text),
            kid=kid,
            internal=True,
        )
    return _verify_signed(fmt, message.kid, key, message.payload, now=now, options=options)


def _verify_signed(
    fmt: str, kid: bytes, key: TrustedKey, payload: bytes, *, now: float, options: VerifyOptions
) -> VerifiedCode | Rejection:
    """The steps after a good signature: claims, issuer and times."""
    try:
        claims = decode_claims(fmt, payload)
        check_issuer(fmt, claims, key)
        check_times(fmt, claims, now, options)
    except CodeRejected as exc:
        return Rejection(reason=exc.reason, detail=str(exc), format=fmt, kid=kid)
    except Exception as exc:  # noqa: BLE001 - a bug must not stop the lane: reject, flag it
        return Rejection(
            reason=Reason.MALFORMED_CLAIMS,
            detail=f"internal error: {type(exc).__name__}",
            format=fmt,
            kid=kid,
            internal=True,
        )
    return VerifiedCode(format=fmt, kid=kid, claims=claims)


def _format_of(text: object) -> str | None:
    """The format a text's prefix names (text may be anything when a caller errs)."""
    if not isinstance(text, str):
        return None
    return next((f for f, p in PREFIXES.items() if text.startswith(p)), None)


# --------------------------------------------------------------------------- issue


def encode_code(fmt: str, claims: Mapping[int, Any], key: PrivateKey, kid: bytes) -> str:
    """Sign claims and wrap them as QR text of the given format."""
    cose = sign1(payload=cbor2.dumps(dict(claims)), key=key, kid=kid)
    return PREFIXES[fmt] + base45.encode(zlib.compress(cose, 9))


def issue_ssc1(
    *,
    identity: Identity,
    key: PrivateKey,
    kid: bytes,
    iss: str,
    iat: int,
    ttl_s: int,
    cti: bytes,
) -> str:
    """Make a signed Suishen code; `cti` is 16 random bytes chosen by the caller."""
    if len(cti) != CTI_LENGTH:
        raise ValueError(f"cti must be {CTI_LENGTH} bytes")
    claims = {
        CLAIM_ISS: iss,
        CLAIM_IAT: iat,
        CLAIM_EXP: iat + ttl_s,
        CLAIM_CTI: cti,
        CLAIM_SSC: identity.to_claim(),
    }
    return encode_code(SSC1, claims, key, kid)
