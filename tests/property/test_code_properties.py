"""Properties of the verifier: round trips for any claims, and no crash on any input."""

from __future__ import annotations

import secrets
import zlib

from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from hypothesis import given, settings
from hypothesis import strategies as st

from suishen.protocol import base45
from suishen.protocol.codes import Identity, Rejection, VerifiedCode, issue_ssc1, verify
from suishen.protocol.cose import kid_of, spki_der
from suishen.protocol.reasons import VERIFICATION_REASONS, Reason
from suishen.protocol.trust import TrustList, trusted_key_from_public_key

KEYS = [ec.generate_private_key(ec.SECP256R1()), ed25519.Ed25519PrivateKey.generate()]
TRUST = TrustList([trusted_key_from_public_key(k.public_key(), issuer="CN-SH") for k in KEYS])
ALLOWED = VERIFICATION_REASONS | {Reason.FORMAT_NOT_ACCEPTED}

identities = st.builds(
    Identity,
    idt=st.sampled_from(["RIC", "PP", "HMT", "FPR"]),
    idn=st.text("0123456789ABCDEFGHJKX", min_size=1, max_size=32),
    nat=st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=3, max_size=3),
    nm=st.text(
        st.characters(categories=["L", "Zs"], max_codepoint=0x9FFF), min_size=1, max_size=64
    ).filter(lambda s: s.isprintable()),
    dob=st.dates().map(lambda d: d.isoformat()).filter(lambda s: len(s) == 10),
    st=st.sampled_from(["G", "Y", "R"]),
)


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


def test_deeply_nested_cbor_is_a_rejection():
    """A zip-bomb-sized nest of CBOR arrays is refused, not a crash."""
    for nest in (b"\x81" * 60_000 + b"\x00", b"\xa1\x00" * 30_000 + b"\x00"):
        text = "SSC1:" + base45.encode(zlib.compress(nest))
        assert_result(verify(text, TRUST, 0))
