"""Properties of the verifier: round trips for any claims, and no crash on any input."""

from __future__ import annotations

import secrets
import zlib

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from hypothesis import given, settings
from hypothesis import strategies as st

from suishen.protocol import base45, cbor, codes
from suishen.protocol.codes import Identity, Rejection, VerifiedCode, issue_ssc1, verify
from suishen.protocol.cose import decode_sign1, kid_of, spki_der
from suishen.protocol.errors import DecodeError
from suishen.protocol.reasons import VERIFICATION_REASONS, Reason
from suishen.protocol.trust import TrustList, trusted_key_from_public_key
from tests.property.strategies import identities

KEYS = [ec.generate_private_key(ec.SECP256R1()), ed25519.Ed25519PrivateKey.generate()]
TRUST = TrustList([trusted_key_from_public_key(k.public_key(), issuer="CN-SH") for k in KEYS])
ALLOWED = VERIFICATION_REASONS | {Reason.FORMAT_NOT_ACCEPTED}


@settings(max_examples=150, deadline=None)
@given(
    identity=identities,
    key=st.sampled_from(KEYS),
    iat=st.integers(0, 2**32),
    ttl=st.integers(0, 300),
)
def test_sign_then_verify_round_trips(identity, key, iat, ttl):
    """Any valid identity, key and lifetime: issue then verify gives back the same claims."""
    text = issue_ssc1(
        identity=identity,
        key=key,
        kid=kid_of(spki_der(key.public_key())),
        iss="CN-SH",
        iat=iat,
        ttl_s=ttl,
        cti=secrets.token_bytes(16),
    )
    result = verify(text, TRUST, iat)
    assert isinstance(result, VerifiedCode), result
    assert result.identity == identity and (result.iat, result.exp) == (iat, iat + ttl)


def assert_result(value) -> None:
    assert isinstance(value, VerifiedCode | Rejection)
    if isinstance(value, Rejection):
        assert value.reason in ALLOWED


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=5000))
def test_any_text_gives_a_result(text):
    """Any text at all yields a VerifiedCode or a typed Rejection, never an exception."""
    assert_result(verify(text, TRUST, 0))


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=3000), st.sampled_from(["SSC1:", "HC1:"]))
def test_any_compressed_bytes_give_a_result(data, prefix):
    """Arbitrary bytes behind a valid prefix, base45 and zlib never raise."""
    assert_result(verify(prefix + base45.encode(zlib.compress(data)), TRUST, 0))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000), st.sampled_from(["SSC1:", "HC1:"]))
def test_any_base45_bytes_give_a_result(data, prefix):
    """Arbitrary bytes behind a valid prefix and base45 (no zlib) never raise."""
    assert_result(verify(prefix + base45.encode(data), TRUST, 0))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_base45_round_trips(data):
    """decode(encode(b)) == b for any bytes."""
    assert base45.decode(base45.encode(data)) == data


def _base45_by_the_rfc(text: str) -> bytes | None:
    """RFC 9285 §4.2, one triple at a time: the reference the packed decoder must equal."""
    if any(c not in base45.ALPHABET for c in text) or len(text) % 3 == 1:
        return None
    out = bytearray()
    for i in range(0, len(text), 3):
        chunk = [base45.ALPHABET.index(c) for c in text[i : i + 3]]
        value = sum(d * 45**k for k, d in enumerate(chunk))
        if value > (0xFFFF if len(chunk) == 3 else 0xFF):
            return None
        out += value.to_bytes(2 if len(chunk) == 3 else 1, "big")
    return bytes(out)


@settings(max_examples=500, deadline=None)
@given(
    st.text(base45.ALPHABET, max_size=400)
    | st.text(base45.ALPHABET[-12:] + "é", max_size=40)
    | st.lists(st.sampled_from(["000", "GGW", "FGW", "ZZZ", "::", "U7", "a"]), max_size=200).map(
        "".join
    )
)
def test_base45_decodes_as_the_rfc_says(text):
    """Any text (valid, triples above 0xFFFF, a final pair above 0xFF, a dangling character,
    characters outside the alphabet): the same bytes as a triple-by-triple RFC 9285 decoder,
    or malformed_base45 exactly where that decoder refuses."""
    want = _base45_by_the_rfc(text)
    if want is None:
        with pytest.raises(DecodeError) as refused:
            base45.decode(text)
        assert refused.value.reason is Reason.MALFORMED_BASE45
    else:
        assert base45.decode(text) == want


def test_deeply_nested_cbor_is_a_rejection():
    """A zip-bomb-sized nest of CBOR arrays is refused, not a crash."""
    for nest in (b"\x81" * 60_000 + b"\x00", b"\xa1\x00" * 30_000 + b"\x00"):
        text = "SSC1:" + base45.encode(zlib.compress(nest))
        assert_result(verify(text, TRUST, 0))


def _ssc1_payload(iss: str, iat: int, exp: int, cti: bytes, body: dict[str, object]) -> bytes:
    """A claims payload as issue_ssc1 writes it (cbor2, insertion order)."""
    return cbor2.dumps({1: iss, 6: iat, 4: exp, 7: cti, -261: body})


texts = st.text(st.characters(exclude_categories=("Cs",)), max_size=90)


@settings(max_examples=300, deadline=None)
@given(
    iss=texts,
    iat=st.integers(0, 2**33),
    exp=st.integers(-(2**33), 2**33),
    cti=st.binary(min_size=15, max_size=17),
    fields=st.lists(texts, min_size=6, max_size=6),
    edits=st.lists(
        st.tuples(st.integers(0, 10_000), st.integers(0, 255), st.sampled_from("xid")),
        max_size=3,
    ),
)
def test_the_ssc1_fast_path_decodes_as_the_strict_decoder(
    *,
    iss: str,
    iat: int,
    exp: int,
    cti: bytes,
    fields: list[str],
    edits: list[tuple[int, int, str]],
) -> None:
    """The fused path's claims reader for the common SSC1 shape either declines (None) or
    gives exactly the map protocol.cbor gives and the Claims the generic path builds, for
    payloads of that shape with any texts (short and long heads), times and cti lengths, and
    after any byte replaced, inserted or deleted."""
    body = dict(zip(("idt", "idn", "nat", "nm", "dob", "st"), fields, strict=True))
    data = bytearray(_ssc1_payload(iss, iat, exp, cti, {"v": 1, **body}))
    for where, value, how in edits:
        i = where % (len(data) + 1)
        if how == "x" and i < len(data):
            data[i] = value
        elif how == "i":
            data.insert(i, value)
        elif how == "d" and i < len(data):
            del data[i]
    payload = bytes(data)
    claims = codes._ssc1_fast_claims(payload)
    if claims is None:
        return
    assert _claims_map(claims) == cbor.loads(payload)
    assert [type(v) for v in (claims.iss, claims.iat, claims.exp, claims.cti)] == [
        str,
        int,
        int,
        bytes,
    ]
    # and the Claims it builds are what the generic path (_ssc1_claims) gives for the same map
    generic = cbor.loads(payload)
    assert claims == codes._ssc1_claims(generic, generic[1], generic[6], generic[4], generic[7])


def _claims_map(claims: codes.Claims) -> dict[object, object]:
    """The claims map a Claims of the SSC1 shape stands for."""
    return {1: claims.iss, 6: claims.iat, 4: claims.exp, 7: claims.cti, -261: claims.body}


def test_the_ssc1_fast_path_takes_the_issued_shape() -> None:
    """The payload issue_ssc1 writes takes the fast path (else it would never run)."""
    text = issue_ssc1(
        identity=Identity(
            idt="RIC", idn="310101199001011234", nat="CHN", nm="张三明", dob="1990-01-01", st="G"
        ),
        key=KEYS[0],
        kid=kid_of(spki_der(KEYS[0].public_key())),
        iss="CN-SH",
        iat=1_790_000_000,
        ttl_s=120,
        cti=secrets.token_bytes(16),
    )
    message = decode_sign1(zlib.decompress(base45.decode(text[5:])))
    claims = codes._ssc1_fast_claims(message.payload)
    assert claims is not None
    assert _claims_map(claims) == cbor.loads(message.payload)
