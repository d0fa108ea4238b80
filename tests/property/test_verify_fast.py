"""verify()'s fused SSC1 path gives exactly what the step-by-step path gives.

verify() takes an SSC1 code in the shape our issuers write through one fused path and hands
everything else to the steps (codes._verify_steps). These
properties hold the two equal (the whole VerifiedCode, or the Rejection with its reason and
detail) over valid codes and codes mutated as QR text, as COSE bytes and as signed payloads,
and check that the fused path is really taken for the codes issuers write.
"""

from __future__ import annotations

import contextlib
import secrets
import zlib
from collections.abc import Iterator
from typing import NoReturn

import cbor2
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import example, given, settings
from hypothesis import strategies as st

from suishen.protocol import base45, cbor, codes, cose
from suishen.protocol.codes import (
    SSC1,
    Identity,
    Rejection,
    VerifiedCode,
    VerifyOptions,
    issue_ssc1,
    verify,
)
from suishen.protocol.reasons import Reason
from suishen.protocol.trust import TrustedKey, TrustList, trusted_key_from_public_key
from tests.property.strategies import identities

KEYS = [ec.generate_private_key(ec.SECP256R1()), ed25519.Ed25519PrivateKey.generate()]
UNTRUSTED = ed25519.Ed25519PrivateKey.generate()
TRUST = TrustList([trusted_key_from_public_key(k.public_key(), issuer="CN-SH") for k in KEYS])
IAT = 1_790_000_000

keys = st.sampled_from([*KEYS, UNTRUSTED])


def _kid(key: cose.PrivateKey) -> bytes:
    return cose.kid_of(cose.spki_der(key.public_key()))


def _issue(identity: Identity, key: cose.PrivateKey, ttl: int = 120, iss: str = "CN-SH") -> str:
    return issue_ssc1(
        identity=identity,
        key=key,
        kid=_kid(key),
        iss=iss,
        iat=IAT,
        ttl_s=ttl,
        cti=secrets.token_bytes(16),
    )


def _wrap(cose_bytes: bytes) -> str:
    return "SSC1:" + base45.encode(zlib.compress(cose_bytes, 9))


def _cose_of(text: str) -> bytes:
    return zlib.decompress(base45.decode(text[5:]))


def _mutate(data: bytes | str, edits: list[tuple[int, int, str]]) -> bytearray | list[str]:
    out: bytearray | list[str] = bytearray(data) if isinstance(data, bytes) else list(data)
    for where, value, how in edits:
        i = where % (len(out) + 1)
        item = value if isinstance(out, bytearray) else base45.ALPHABET[value % 45]
        if how == "x" and i < len(out):
            out[i] = item  # type: ignore[call-overload]
        elif how == "i":
            out.insert(i, item)  # type: ignore[arg-type]
        elif how == "d" and i < len(out):
            del out[i]
    return out


# Replacement bytes: any, and often letters and digits (they keep the shape of an ID number,
# so a length that no longer matches its head is what tells) or the heads of short texts.
byte_values = st.integers(0, 255) | st.sampled_from(b"0aZc\x60\x61\x62\x63\x77\x78\x79")
edits = st.lists(
    st.tuples(st.integers(0, 10_000), byte_values, st.sampled_from("xid")),
    min_size=1,
    max_size=3,
)


@contextlib.contextmanager
def _fused_only(*, signed_steps: bool = False) -> Iterator[None]:
    """verify() within may not hand a code to the step-by-step path (nor, unless
    signed_steps, to the steps after the signature): it fails the test if it does."""
    saved = codes._verify_steps, codes._verify_signed

    def handed_on(*args: object, **kwargs: object) -> NoReturn:
        raise AssertionError("the fused path handed the code on")

    codes._verify_steps = handed_on
    if not signed_steps:
        codes._verify_signed = handed_on
    try:
        yield
    finally:
        codes._verify_steps, codes._verify_signed = saved


def _fused(text: str, now: float, *, signed_steps: bool = False) -> VerifiedCode | Rejection:
    with _fused_only(signed_steps=signed_steps):
        return verify(text, TRUST, now)


def _assert_same(
    text: str,
    now: float,
    options: VerifyOptions = codes.DEFAULT_OPTIONS,
    trust: TrustList = TRUST,
) -> None:
    """The fused verify and the steps agree, field for field (detail and kid included)."""
    fused = verify(text, trust, now, options)
    steps = codes._verify_steps(text, trust, now, options)
    assert fused == steps
    assert type(fused) is type(steps)
    if isinstance(fused, VerifiedCode):
        assert type(fused.claims) is codes.Claims and type(fused.identity) is Identity


# Warm the COSE header cache (the fused path needs protected headers seen once before).
for _key in KEYS:
    verify(
        _issue(Identity(idt="PP", idn="E1", nat="CHN", nm="x", dob="1990-01-01", st="G"), _key),
        TRUST,
        IAT,
    )


@settings(max_examples=200, deadline=None)
@given(identity=identities, key=st.sampled_from(KEYS), ttl=st.integers(0, 300))
def test_issued_codes_take_the_fused_path(identity: Identity, key: cose.PrivateKey, ttl: int):
    """Every valid code an issuer writes (any identity, ES256 or EdDSA) is verified by the
    fused path itself (it does not decline), with the claims the steps give."""
    text = _issue(identity, key, ttl)
    fused = _fused(text, IAT + 1)
    assert isinstance(fused, VerifiedCode), fused
    assert fused == codes._verify_steps(text, TRUST, IAT + 1, codes.DEFAULT_OPTIONS)
    assert fused.identity == identity
    assert (fused.iat, fused.exp, fused.iss) == (IAT, IAT + ttl, "CN-SH")


@settings(max_examples=150, deadline=None)
@given(
    identity=identities,
    key=keys,
    ttl=st.integers(0, 400),
    iss=st.sampled_from(["CN-SH", "CN-BJ", "", "CN-SH-" + "x" * 30]),
    offset=st.sampled_from([-1000, -61, -60, 0, 30, 179, 181, 360, 10**6]),
)
def test_fused_equals_steps_for_times_issuers_and_keys(
    identity: Identity, key: cose.PrivateKey, ttl: int, iss: str, offset: int
) -> None:
    """Valid and refused codes alike (expired, not yet valid, too long a lifetime, another
    issuer, an untrusted key): the same VerifiedCode or the same Rejection."""
    _assert_same(_issue(identity, key, ttl, iss), IAT + offset)


@settings(max_examples=300, deadline=None)
@given(identity=identities, key=keys, changes=edits)
def test_fused_equals_steps_for_mutated_text(
    identity: Identity, key: cose.PrivateKey, changes: list[tuple[int, int, str]]
) -> None:
    """QR text with base45 characters replaced, inserted or deleted."""
    text = _issue(identity, key)
    mutated = "".join(_mutate(text[5:], changes))  # type: ignore[arg-type]
    _assert_same("SSC1:" + mutated, IAT)


@settings(max_examples=300, deadline=None)
@given(identity=identities, key=keys, changes=edits)
@example(
    identity=Identity(idt="RIC", idn="1", nat="CHN", nm="n", dob="1990-01-01", st="G"),
    key=KEYS[0],
    changes=[(10_000, 0x01, "i")],  # a trailing byte after the signature
)
def test_fused_equals_steps_for_mutated_cose(
    identity: Identity, key: cose.PrivateKey, changes: list[tuple[int, int, str]]
) -> None:
    """COSE bytes (headers, payload, signature) with bytes replaced, inserted or deleted,
    re-wrapped as valid zlib and base45."""
    data = bytes(_mutate(_cose_of(_issue(identity, key)), changes))  # type: ignore[arg-type]
    _assert_same(_wrap(data), IAT)


@settings(max_examples=300, deadline=None)
@given(identity=identities, key=st.sampled_from(KEYS), changes=edits)
def test_fused_equals_steps_for_mutated_signed_payloads(
    identity: Identity, key: cose.PrivateKey, changes: list[tuple[int, int, str]]
) -> None:
    """A claims payload with bytes replaced, inserted or deleted, then signed by a trusted
    key: what the fused path reads after a good signature agrees with the steps."""
    claims = {1: "CN-SH", 6: IAT, 4: IAT + 120, 7: b"c" * 16, -261: identity.to_claim()}
    payload = bytes(_mutate(cbor2.dumps(claims), changes))  # type: ignore[arg-type]
    _assert_same(_wrap(cose.sign1(payload=payload, key=key, kid=_kid(key))), IAT)


@settings(max_examples=300, deadline=None)
@given(
    identity=identities, field=st.sampled_from(codes.IDENTITY_FIELDS), value=st.text(max_size=70)
)
def test_fast_claims_refuse_each_field_as_identity_does(
    identity: Identity, field: str, value: str
) -> None:
    """A valid identity with one field replaced by any text: the fused verify accepts it
    exactly when Identity does, and otherwise gives the steps' malformed_claims."""
    claim = identity.to_claim()
    claim[field] = value
    claims = {1: "CN-SH", 6: IAT, 4: IAT + 120, 7: b"c" * 16, -261: claim}
    text = _wrap(cose.sign1(payload=cbor2.dumps(claims), key=KEYS[1], kid=_kid(KEYS[1])))
    try:
        Identity(**{k: v for k, v in claim.items() if k != "v"})
        valid = True
    except (TypeError, ValueError):
        valid = False
    assert isinstance(verify(text, TRUST, IAT), VerifiedCode) == valid
    _assert_same(text, IAT)


@given(key=st.sampled_from(KEYS), ttl=st.sampled_from([0, 120, 300, 301]))
@settings(max_examples=20, deadline=None)
def test_fused_equals_steps_at_every_time_boundary(key: cose.PrivateKey, ttl: int) -> None:
    """At and next to each boundary (iat - skew, exp + skew, the 300 s lifetime), to the
    second and to the millisecond."""
    text = _issue(
        Identity(idt="RIC", idn="1", nat="CHN", nm="n", dob="1990-01-01", st="G"), key, ttl
    )
    for base in (IAT - 60, IAT + ttl + 60):
        for delta in (-1, -0.001, 0, 0.001, 1):
            _assert_same(text, base + delta)
            _assert_same(text, base + delta, VerifyOptions(clock_skew_s=0))


@given(key=st.sampled_from(KEYS), text_field=st.sampled_from(["iss", "idn", "nm"]))
@settings(max_examples=20, deadline=None)
def test_a_text_head_that_disagrees_with_its_text_is_never_read_fast(
    key: cose.PrivateKey, text_field: str
) -> None:
    """The head of iss, idn or nm declaring any other length (each byte value), signed: the
    fused path gives the steps' answer (the shape alone would still match the pattern)."""
    identity = Identity(
        idt="RIC", idn="31010119900101", nat="CHN", nm="张三明", dob="1990-01-01", st="G"
    )
    claims = {1: "CN-SH", 6: IAT, 4: IAT + 120, 7: b"c" * 16, -261: identity.to_claim()}
    payload = cbor2.dumps(claims)
    at = {"iss": 2, "idn": payload.index(b"\x63idn") + 4, "nm": payload.index(b"\x62nm") + 3}
    where = at[text_field]
    for head in range(0x60, 0x7A):
        signed = payload[:where] + bytes((head,)) + payload[where + 1 :]
        _assert_same(_wrap(cose.sign1(payload=signed, key=key, kid=_kid(key))), IAT)


def test_fused_equals_steps_for_key_validity_formats_and_shared_kids() -> None:
    """Keys with a validity window, keys trusted for HC1 only, and two keys under one kid:
    the fused path declines them or answers as the steps do."""
    identity = Identity(idt="RIC", idn="1", nat="CHN", nm="n", dob="1990-01-01", st="G")
    for key in KEYS:
        text = _issue(identity, key)
        public = key.public_key()
        for trusted in (
            [trusted_key_from_public_key(public, issuer="CN-SH", not_before=IAT + 10)],
            [trusted_key_from_public_key(public, issuer="CN-SH", not_after=IAT - 10)],
            [trusted_key_from_public_key(public, issuer="CN-SH", not_before=IAT, not_after=IAT)],
            [trusted_key_from_public_key(public, issuer="CN-SH", formats=("HC1",))],
            [trusted_key_from_public_key(public, issuer="CN-BJ")],
            [
                trusted_key_from_public_key(public, issuer="CN-BJ"),
                trusted_key_from_public_key(public, issuer="CN-SH"),
            ],
            [  # another key under the same kid (a collision): the second one verifies
                _other_key_with_kid(_kid(key)),
                trusted_key_from_public_key(public, issuer="CN-SH"),
            ],
            [
                trusted_key_from_public_key(public, issuer="CN-SH", not_after=IAT - 10),
                trusted_key_from_public_key(public, issuer="CN-SH"),
            ],
        ):
            for now in (IAT - 10, IAT, IAT + 10, IAT + 11):
                _assert_same(text, now, trust=TrustList(trusted))


def _other_key_with_kid(kid: bytes) -> TrustedKey:
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    return TrustedKey(
        kid=kid,
        issuer="CN-SH",
        formats=frozenset({SSC1}),
        public_key=other,
        anchor_der=cose.spki_der(other),
        anchor_kind="spki",
    )


field_texts = st.one_of(
    st.sampled_from(["RIC", "PP", "HMT", "FPR", "CHN", "G", "Y", "R", "1990-01-01", "1990-1-01"]),
    st.text(max_size=70),
    st.text("0123456789-AZaz", max_size=34),
)


@settings(max_examples=400, deadline=None)
@given(fields=st.lists(field_texts, min_size=6, max_size=6), v=st.sampled_from([1, 1, 2]))
def test_fast_claims_accept_exactly_the_identities_identity_accepts(
    fields: list[str], v: int
) -> None:
    """For the issued payload shape with any six identity texts, the fast claims reader
    accepts exactly the identities Identity's own checks accept (and v == 1), and then
    gives the Claims the generic path gives."""
    body = {"v": v, **dict(zip(codes.IDENTITY_FIELDS, fields, strict=True))}
    payload = cbor2.dumps({1: "CN-SH", 6: IAT, 4: IAT + 120, 7: b"c" * 16, -261: body})
    try:
        want: object = codes._ssc1_claims(cbor.loads(payload), "CN-SH", IAT, IAT + 120, b"c" * 16)
    except codes.DecodeError as exc:
        want = exc.reason
    fast = codes._ssc1_fast_claims(payload)
    assert (fast is not None) == isinstance(want, codes.Claims)
    assert fast == want if fast is not None else True


def test_long_names_take_the_fast_claims_reader() -> None:
    """Names of 24..255 UTF-8 bytes (0x78 head) and of 256 (0x79 01 00) are read fast."""
    for nm in ("名" * 8, "名" * 64, "\U00020000" * 64):
        identity = Identity(idt="PP", idn="E" * 32, nat="CHN", nm=nm, dob="1990-01-01", st="Y")
        text = _issue(identity, KEYS[1])
        result = _fused(text, IAT)
        assert isinstance(result, VerifiedCode) and result.identity == identity


def test_a_refused_code_has_its_signature_checked_once() -> None:
    """A bad signature and an expired code are answered by the fused path itself (never
    handed on to check the signature a second time), with the steps' rejection."""
    identity = Identity(idt="RIC", idn="1", nat="CHN", nm="n", dob="1990-01-01", st="G")
    good = _issue(identity, KEYS[0])
    data = bytearray(_cose_of(good))
    data[-1] ^= 1
    forged = _wrap(bytes(data))
    for text, now, reason in (
        (forged, IAT, Reason.BAD_SIGNATURE),
        (good, IAT + 10**6, Reason.EXPIRED),
    ):
        fused = _fused(text, now, signed_steps=True)
        assert isinstance(fused, Rejection) and fused.reason is reason
        assert fused == codes._verify_steps(text, TRUST, now, codes.DEFAULT_OPTIONS)


def test_options_reach_the_fused_path() -> None:
    """A site that refuses SSC1, allows only EdDSA, or a shorter lifetime, gets the same
    answer from verify() as from the steps."""
    identity = Identity(idt="RIC", idn="1", nat="CHN", nm="n", dob="1990-01-01", st="G")
    text = _issue(identity, KEYS[0], ttl=200)
    for options in (
        VerifyOptions(formats=frozenset({"HC1"})),
        VerifyOptions(algorithms={SSC1: frozenset({cose.EDDSA})}),
        VerifyOptions(max_lifetime_s={SSC1: 100}),
        VerifyOptions(max_lifetime_s={}),
        VerifyOptions(max_text_chars=100),
        VerifyOptions(max_payload_bytes=100),
        VerifyOptions(clock_skew_s=0),
    ):
        _assert_same(text, IAT + 200, options)
        assert isinstance(verify(text, TRUST, IAT + 30), VerifiedCode)


@settings(max_examples=500, deadline=None)
@given(signature=st.binary(min_size=64, max_size=64), zeros=st.integers(0, 40))
def test_raw_to_der_is_encode_dss_signature(signature: bytes, zeros: int) -> None:
    """ES256 r||s -> DER by byte operations gives encode_dss_signature's bytes, including
    halves with leading zero bytes (or all zero)."""
    for raw in (
        signature,
        signature[:32] + bytes(min(zeros, 32)) + signature[32 + min(zeros, 32) :],
        bytes(min(zeros, 32)) + signature[min(zeros, 32) :],
    ):
        r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
        assert cose.raw_to_der(raw) == encode_dss_signature(r, s)
