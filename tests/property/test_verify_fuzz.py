"""verify() over arbitrary CBOR in every position of a code, and over mutated valid codes.

Values come from a strategy of any CBOR structure (decimal fractions and bigfloats, other
tags, nested arrays and maps, floats, bignums, undefined and simple values). Each is put in
one position of an otherwise valid code signed by a trusted key, so positions behind the
signature (protected header, payload, claims, identity map) really reach the claims checks.
The outcome must be a VerifiedCode or a Rejection with a verification reason, and never an
internal (unexpected-exception) rejection. Mutated valid codes must never verify to other
claims than the original's: whatever they break, nothing is forged.
"""

from __future__ import annotations

import contextlib
import zlib

import cbor2
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from suishen.protocol import base45, cbor
from suishen.protocol.codes import Rejection, VerifiedCode, verify
from suishen.protocol.reasons import VERIFICATION_REASONS
from suishen.protocol.trust import TrustList, trusted_key_from_public_key
from tests.codekit import SSC1_BODY, alg, envelope, hc1_claims, kid, ssc1_claims, wrap
from tests.conftest import NOW

KEYS = [ec.generate_private_key(ec.SECP256R1()), ed25519.Ed25519PrivateKey.generate()]
TRUST = TrustList(
    [
        trusted_key_from_public_key(k.public_key(), issuer="CN-SH", formats=["SSC1", "HC1"])
        for k in KEYS
    ]
)
FAST = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)

scalars = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),  # beyond 64 bits cbor2 writes tags 2/3
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.binary(max_size=8),
    st.booleans(),
    st.none(),
    st.just(cbor2.undefined),
    st.sampled_from([0, 19, 32, 255]).map(cbor2.CBORSimpleValue),
    st.sampled_from(["RIC", "CHN", "G", "1949-12-31", "CN-SH", -7, -8, 1]),
)
keys = st.one_of(st.integers(-300, 300), st.text(max_size=4), st.binary(max_size=4))


def _tagged(children: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(
        st.builds(cbor2.CBORTag, st.sampled_from([4, 5]), st.lists(children, max_size=3)),
        st.builds(
            cbor2.CBORTag,
            st.sampled_from([4, 5]),
            st.tuples(st.integers(-(2**70), 2**70), st.integers(-(2**70), 2**70)).map(list),
        ),
        st.builds(
            cbor2.CBORTag,
            st.sampled_from([0, 1, 2, 3, 18, 24, 25, 28, 29, 30, 35, 36, 37, 61, 258, 55799]),
            children,
        ),
    )


cbor_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(keys, children, max_size=4),
        _tagged(children),
    ),
    max_leaves=12,
)


def check(text: str) -> VerifiedCode | Rejection:
    result = verify(text, TRUST, NOW)
    if isinstance(result, Rejection):
        assert result.reason in VERIFICATION_REASONS, result
        assert not result.internal, result.detail
    else:
        assert isinstance(result, VerifiedCode)
    return result


@FAST
@given(key=st.sampled_from(KEYS), value=cbor_values, label=st.sampled_from([1, 4, 99]))
def test_any_value_in_the_protected_header(key, value, label):
    """alg, kid or another label of the signed protected header set to any CBOR value."""
    protected = {1: alg(key), 4: kid(key)}
    protected[label] = value
    check(envelope(key, payload=cbor2.dumps(ssc1_claims()), protected=protected))


@FAST
@given(key=st.sampled_from(KEYS), value=cbor_values, label=st.sampled_from([1, 4, 99]))
def test_any_value_in_the_unprotected_header(key, value, label):
    """alg, kid or another label of the unprotected header set to any CBOR value."""
    protected = {} if label != 99 else None
    check(
        envelope(
            key, payload=cbor2.dumps(ssc1_claims()), protected=protected, unprotected={label: value}
        )
    )


@FAST
@given(key=st.sampled_from(KEYS), value=cbor_values, prefix=st.sampled_from(["SSC1:", "HC1:"]))
def test_any_value_as_the_signed_payload(key, value, prefix):
    """The whole signed payload is any CBOR value."""
    check(envelope(key, payload=cbor2.dumps(value), prefix=prefix))


@FAST
@given(key=st.sampled_from(KEYS), value=cbor_values, slot=st.integers(0, 3))
def test_any_value_as_a_cose_element(key, value, slot):
    """One of the four COSE_Sign1 elements replaced by any value (rest signed as usual)."""
    text = envelope(key, payload=cbor2.dumps(ssc1_claims()))
    body = cbor2.loads(zlib.decompress(base45.decode(text[5:]))).value
    body[slot] = value
    check(wrap(cbor2.dumps(cbor2.CBORTag(18, body))))


@FAST
@given(
    key=st.sampled_from(KEYS),
    value=cbor_values,
    label=st.sampled_from([1, 4, 6, 7, -260, -261, 1000]),
    fmt=st.sampled_from(["SSC1:", "HC1:"]),
)
def test_any_value_in_a_signed_claim(key, value, label, fmt):
    """Any claim of a trusted issuer's payload set to any CBOR value."""
    claims = ssc1_claims() if fmt == "SSC1:" else hc1_claims()
    claims[label] = value
    check(envelope(key, payload=cbor2.dumps(claims), prefix=fmt))


@FAST
@given(
    key=st.sampled_from(KEYS),
    value=cbor_values,
    field=st.sampled_from([*SSC1_BODY, "extra"]),
)
def test_any_value_in_the_identity_map(key, value, field):
    """Any field of a trusted issuer's -261 identity map set to any CBOR value."""
    claims = ssc1_claims()
    claims[-261][field] = value
    result = check(envelope(key, payload=cbor2.dumps(claims)))
    if isinstance(result, VerifiedCode):
        assert all(type(getattr(result.identity, f)) is str for f in SSC1_BODY if f != "v")


@FAST
@given(key=st.sampled_from(KEYS), value=cbor_values, field=st.sampled_from(["dob", "nam", "v"]))
def test_any_value_in_the_dcc(key, value, field):
    """Any field of a trusted issuer's DCC (HC1 -260 {1: ...}) set to any CBOR value."""
    claims = hc1_claims()
    claims[-260][1][field] = value
    check(envelope(key, payload=cbor2.dumps(claims), prefix="HC1:"))


# ------------------------------------------------------------------ mutations of valid codes

ORIGINALS = {
    prefix: [envelope(k, payload=cbor2.dumps(claims), prefix=prefix) for k in KEYS]
    for prefix, claims in (("SSC1:", ssc1_claims()), ("HC1:", hc1_claims()))
}
ORIGINAL_CLAIMS = {}
for _texts in ORIGINALS.values():
    for _text in _texts:
        _result = verify(_text, TRUST, NOW)
        assert isinstance(_result, VerifiedCode)
        ORIGINAL_CLAIMS[_text] = (_result.format, _result.claims)

originals = st.sampled_from([t for texts in ORIGINALS.values() for t in texts])


@st.composite
def mutated(draw, data: bytes | str, alphabet: bytes | str) -> bytes | str:
    """`data` with 1..4 byte (or character) replacements, insertions or deletions."""
    out = data
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, max(len(out) - 1, 0)))
        op = draw(st.sampled_from(["replace", "insert", "delete", "flip"]))
        if isinstance(out, bytes):
            b = bytes([draw(st.integers(0, 255))])
        else:
            b = draw(st.sampled_from(alphabet))
        if op == "replace":
            out = out[:i] + b + out[i + 1 :]
        elif op == "insert":
            out = out[:i] + b + out[i:]
        elif op == "delete":
            out = out[:i] + out[i + 1 :]
        elif isinstance(out, bytes):
            out = out[:i] + bytes([out[i] ^ (1 << draw(st.integers(0, 7)))]) + out[i + 1 :]
    return out


def assert_not_forged(original: str, text: str) -> None:
    result = check(text)
    if isinstance(result, VerifiedCode):
        assert (result.format, result.claims) == ORIGINAL_CLAIMS[original]


@settings(max_examples=400, deadline=None, derandomize=True)
@given(data=st.data(), original=originals)
def test_mutated_cose_bytes_forge_nothing(data, original):
    """Byte mutations of a valid code's COSE bytes (re-compressed) never verify other claims."""
    prefix, _, body = original.partition(":")
    cose = zlib.decompress(base45.decode(body))
    bad = data.draw(mutated(cose, b""))
    assert_not_forged(original, prefix + ":" + base45.encode(zlib.compress(bad)))


@settings(max_examples=400, deadline=None, derandomize=True)
@given(data=st.data(), original=originals)
def test_mutated_qr_text_forges_nothing(data, original):
    """Character mutations of a valid code's base45 text never verify other claims."""
    prefix, _, body = original.partition(":")
    bad = data.draw(mutated(body, base45.ALPHABET + "a~\u00e9"))
    assert_not_forged(original, prefix + ":" + bad)


# ------------------------------------------------------------------ the strict decoder itself

plain_values = st.recursive(
    st.one_of(
        st.integers(-(2**64), 2**64 - 1),
        st.floats(allow_nan=False),
        st.text(max_size=30),
        st.binary(max_size=30),
        st.booleans(),
        st.none(),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(
            st.one_of(st.integers(-(2**64), 2**64 - 1), st.text(max_size=5), st.binary(max_size=5)),
            children,
            max_size=5,
        ),
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(value=plain_values, canonical=st.booleans())
def test_strict_decoder_agrees_with_cbor2(value, canonical):
    """On plain values (no tags) protocol.cbor decodes exactly what cbor2 encoded."""
    assert cbor.loads(cbor2.dumps(value, canonical=canonical)) == value


@settings(max_examples=500, deadline=None, derandomize=True)
@given(data=st.binary(max_size=200))
def test_strict_decoder_raises_only_cbor_invalid(data):
    """Any bytes decode or raise CBORInvalid; nothing else escapes."""
    with contextlib.suppress(cbor.CBORInvalid):
        cbor.loads(data)
