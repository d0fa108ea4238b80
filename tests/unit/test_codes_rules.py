"""Each rule of the code verifier pinned at its edge, through verify() (DESIGN §3).

The per-format algorithm limit, the HC1 path end to end, the exact boundaries of the clock
skew, text, payload, lifetime and time limits, Identity's field rules, several keys sharing
a kid, the format and kid carried on early rejections, and the zip-bomb bound. Written from
the survivors of mutation testing (make mutate), so a changed rule fails a test here.
"""

from __future__ import annotations

import tracemalloc
import zlib

import cbor2
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from suishen.protocol import base45
from suishen.protocol.codes import (
    DEFAULT_OPTIONS,
    HC1,
    SSC1,
    Identity,
    Rejection,
    VerifiedCode,
    VerifyOptions,
    check_signature,
    dcc_type,
    encode_code,
    issue_ssc1,
    verify,
)
from suishen.protocol.cose import (
    EDDSA,
    ES256,
    PS256,
    decode_sign1,
    kid_of,
    sig_structure,
    sign1,
    spki_der,
)
from suishen.protocol.errors import CodeRejected
from suishen.protocol.reasons import Reason
from suishen.protocol.trust import TrustedKey, TrustList
from tests.codekit import DCC_BODY, SSC1_BODY, envelope, hc1_claims, ssc1_claims, wrap
from tests.conftest import NOW

EC_KEY = ec.generate_private_key(ec.SECP256R1())
ED_KEY = ed25519.Ed25519PrivateKey.generate()
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
KID = kid_of(spki_der(EC_KEY.public_key()))
LIMIT = 2**40  # the verifier's bound on a time claim


def trusted(private, *, kid: bytes | None = None, **fields) -> TrustedKey:
    public = private.public_key()
    der = spki_der(public)
    values = {"issuer": "CN-SH", "formats": frozenset({SSC1, HC1}), "anchor_kind": "spki"}
    values.update(fields)
    return TrustedKey(kid=kid or kid_of(der), public_key=public, anchor_der=der, **values)


TRUST = TrustList([trusted(EC_KEY), trusted(ED_KEY), trusted(RSA_KEY)])


def code(claims=None, *, prefix: str = "SSC1:", key=EC_KEY) -> str:
    if claims is None:
        claims = ssc1_claims() if prefix == "SSC1:" else hc1_claims()
    return envelope(key, payload=cbor2.dumps(claims), prefix=prefix)


def ps256_code(claims, prefix: str) -> str:
    """A code signed with RSASSA-PSS (PS256), as some DCC issuers do; we never sign so."""
    kid = kid_of(spki_der(RSA_KEY.public_key()))
    protected = cbor2.dumps({1: PS256, 4: kid})
    payload = cbor2.dumps(claims)
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    signature = RSA_KEY.sign(sig_structure(protected, payload), pss, hashes.SHA256())
    return wrap(cbor2.dumps(cbor2.CBORTag(18, [protected, {}, payload, signature])), prefix)


def reason(result) -> Reason | None:
    if isinstance(result, Rejection):
        assert not result.internal, result.detail
        return result.reason
    return None


def ok(result) -> VerifiedCode:
    assert isinstance(result, VerifiedCode), result
    return result


# ------------------------------------------------------------------ algorithms per format


def test_ps256_is_for_hc1_only():
    """PS256 verifies for an HC1 code, but an SSC1 code signed with it is unsupported_alg."""
    assert ok(verify(ps256_code(hc1_claims(), "HC1:"), TRUST, NOW)).format == HC1
    result = verify(ps256_code(ssc1_claims(), "SSC1:"), TRUST, NOW)
    assert reason(result) is Reason.UNSUPPORTED_ALG
    assert result.format == SSC1 and result.kid == kid_of(spki_der(RSA_KEY.public_key()))


def test_default_algorithms_per_format():
    """By default SSC1 takes ES256 and EdDSA, HC1 ES256, EdDSA and PS256."""
    assert DEFAULT_OPTIONS.algorithms == {
        SSC1: frozenset({ES256, EDDSA}),
        HC1: frozenset({ES256, EDDSA, PS256}),
    }
    for key in (EC_KEY, ED_KEY):
        assert ok(verify(code(key=key), TRUST, NOW))
        assert ok(verify(code(prefix="HC1:", key=key), TRUST, NOW))


def test_configured_algorithms_limit_each_format():
    """A site may narrow a format's algorithms; a format missing from the map takes none."""
    only_eddsa = VerifyOptions(algorithms={SSC1: frozenset({EDDSA}), HC1: frozenset({ES256})})
    assert reason(verify(code(key=EC_KEY), TRUST, NOW, only_eddsa)) is Reason.UNSUPPORTED_ALG
    assert ok(verify(code(key=ED_KEY), TRUST, NOW, only_eddsa))
    no_hc1 = VerifyOptions(algorithms={SSC1: frozenset({ES256})})
    result = verify(code(prefix="HC1:"), TRUST, NOW, no_hc1)
    assert reason(result) is Reason.UNSUPPORTED_ALG and result.kid == KID


# ------------------------------------------------------------------ HC1 end to end


def test_hc1_verifies_with_its_dcc():
    """A trusted HC1 code verifies; its body is the DCC and it has no SSC1 identity."""
    result = ok(verify(code(prefix="HC1:"), TRUST, NOW))
    assert result.format == HC1 and result.kid == KID and result.body == DCC_BODY
    assert result.identity is None and result.iss == "CN-SH"
    assert (result.iat, result.exp, result.cti) == (NOW - 86400, NOW + 86400 * 30, None)


def test_hc1_without_exp_is_malformed_claims():
    """DCC verifiers require exp: an HC1 code without it never expires, so it is refused."""
    claims = hc1_claims()
    del claims[4]
    assert reason(verify(code(claims, prefix="HC1:"), TRUST, NOW)) is Reason.MALFORMED_CLAIMS


def test_hc1_without_iat_or_iss_verifies():
    """iat and iss are optional in a DCC (checked when present)."""
    claims = hc1_claims()
    del claims[6], claims[1]
    result = ok(verify(code(claims, prefix="HC1:"), TRUST, NOW))
    assert result.iat is None and result.iss is None


def test_hc1_expiry_and_validity_through_verify():
    """An HC1 code past exp + skew is expired; before iat - skew it is not_yet_valid."""
    expired = code(hc1_claims(**{"6": 0}) | {4: NOW - 61}, prefix="HC1:")
    assert reason(verify(expired, TRUST, NOW)) is Reason.EXPIRED
    future = hc1_claims()
    future[6] = NOW + 61
    assert reason(verify(code(future, prefix="HC1:"), TRUST, NOW)) is Reason.NOT_YET_VALID


def test_hc1_has_no_lifetime_limit_by_default():
    """A DCC may live for years (max_lifetime None); SSC1 may not live beyond 300 s."""
    claims = hc1_claims()
    claims[6], claims[4] = NOW - 10, NOW + 5 * 365 * 86400
    assert ok(verify(code(claims, prefix="HC1:"), TRUST, NOW))
    assert DEFAULT_OPTIONS.max_lifetime_s == {SSC1: 300, HC1: None}


def test_hc1_claim_types():
    """HC1 cti must be bytes, and hcert a map holding the DCC map under 1."""
    for label, value in ((7, "text"), (-260, {1: "x"}), (-260, {2: {}}), (-260, [1])):
        claims = hc1_claims()
        claims[label] = value
        assert reason(verify(code(claims, prefix="HC1:"), TRUST, NOW)) is Reason.MALFORMED_CLAIMS
    claims = hc1_claims()
    claims[7] = b"any-length-cti"
    assert ok(verify(code(claims, prefix="HC1:"), TRUST, NOW)).cti == b"any-length-cti"


@pytest.mark.parametrize(
    ("usage", "body_kind", "accepted"),
    [
        (None, "v", True),
        (frozenset({"v"}), "v", True),
        (frozenset({"t"}), "v", False),
        (frozenset({"t", "r"}), "t", True),
        (frozenset({"r"}), "r", True),
        (frozenset({"v", "t", "r"}), None, False),
    ],
)
def test_hc1_key_usage_through_verify(usage, body_kind, accepted):
    """A DCC signing key limited to some DCC types signs only those (issuer_not_trusted)."""
    trust = TrustList([trusted(EC_KEY, key_usage=usage)])
    dcc = {k: v for k, v in DCC_BODY.items() if k != "v"}
    if body_kind is not None:
        dcc[body_kind] = [{}]
    result = verify(
        code(hc1_claims(**{"-260": None}) | {-260: {1: dcc}}, prefix="HC1:"), trust, NOW
    )
    if accepted:
        assert ok(result).body == dcc
    else:
        assert reason(result) is Reason.ISSUER_NOT_TRUSTED


def test_key_usage_does_not_apply_to_ssc1():
    """key_usage is a DCC notion: it does not limit a key's SSC1 codes."""
    trust = TrustList([trusted(EC_KEY, key_usage=frozenset({"t"}))])
    assert ok(verify(code(), trust, NOW))


def test_dcc_type():
    """The DCC type is the first of v, t, r present, or None."""
    assert [dcc_type(b) for b in ({"v": []}, {"t": []}, {"r": []}, {"x": []}, {})] == [
        "v",
        "t",
        "r",
        None,
        None,
    ]


def test_hc1_issuer_must_match_the_key():
    """An HC1 code naming another issuer than its key's is issuer_not_trusted."""
    claims = hc1_claims()
    claims[1] = "CN-BJ"
    assert reason(verify(code(claims, prefix="HC1:"), TRUST, NOW)) is Reason.ISSUER_NOT_TRUSTED


def test_key_trusted_for_one_format_only():
    """A key trusted only for SSC1 makes no HC1 code valid, and the other way round."""
    ssc1_only = TrustList([trusted(EC_KEY, formats=frozenset({SSC1}))])
    hc1_only = TrustList([trusted(EC_KEY, formats=frozenset({HC1}))])
    assert reason(verify(code(prefix="HC1:"), ssc1_only, NOW)) is Reason.ISSUER_NOT_TRUSTED
    assert reason(verify(code(), hc1_only, NOW)) is Reason.ISSUER_NOT_TRUSTED
    assert ok(verify(code(), ssc1_only, NOW)) and ok(verify(code(prefix="HC1:"), hc1_only, NOW))


def test_accepted_formats():
    """A site that accepts only SSC1 refuses HC1 codes with format_not_accepted, and back."""
    ssc1_only = VerifyOptions(formats=frozenset({SSC1}))
    result = verify(code(prefix="HC1:"), TRUST, NOW, ssc1_only)
    assert reason(result) is Reason.FORMAT_NOT_ACCEPTED and result.format == HC1
    assert ok(verify(code(), TRUST, NOW, ssc1_only))
    hc1_only = VerifyOptions(formats=frozenset({HC1}))
    assert reason(verify(code(), TRUST, NOW, hc1_only)) is Reason.FORMAT_NOT_ACCEPTED


# ------------------------------------------------------------------ boundaries


def times(iat: int | float, exp: int | float) -> dict:
    return ssc1_claims(**{"6": None}) | {6: iat, 4: exp}


@pytest.mark.parametrize("skew", [60, 0, 5])
def test_skew_edges(skew):
    """iat = now + skew and exp = now - skew are accepted; one second more is refused."""
    options = VerifyOptions(clock_skew_s=skew)
    now = NOW
    assert ok(verify(code(times(now + skew, now + skew + 10)), TRUST, now, options))
    late = verify(code(times(now + skew + 1, now + skew + 10)), TRUST, now, options)
    assert reason(late) is Reason.NOT_YET_VALID
    assert ok(verify(code(times(now - skew - 10, now - skew)), TRUST, now, options))
    past = verify(code(times(now - skew - 10, now - skew - 1)), TRUST, now, options)
    assert reason(past) is Reason.EXPIRED


def test_default_skew_is_60_seconds():
    """Without options the skew is 60 s."""
    assert ok(verify(code(times(NOW + 60, NOW + 100)), TRUST, NOW))
    assert reason(verify(code(times(NOW + 61, NOW + 100)), TRUST, NOW)) is Reason.NOT_YET_VALID
    assert ok(verify(code(times(NOW - 100, NOW - 60)), TRUST, NOW))
    assert reason(verify(code(times(NOW - 100, NOW - 61)), TRUST, NOW)) is Reason.EXPIRED


def test_lifetime_edges():
    """exp = iat is a valid (zero) lifetime; exp < iat is malformed; the limit is inclusive."""
    assert ok(verify(code(times(NOW, NOW)), TRUST, NOW))
    assert reason(verify(code(times(NOW, NOW - 1)), TRUST, NOW)) is Reason.MALFORMED_CLAIMS
    options = VerifyOptions(max_lifetime_s={SSC1: 20, HC1: 10})
    assert ok(verify(code(times(NOW, NOW + 20)), TRUST, NOW, options))
    too_long = verify(code(times(NOW, NOW + 21)), TRUST, NOW, options)
    assert reason(too_long) is Reason.VALIDITY_TOO_LONG
    hc1 = hc1_claims()
    hc1[6], hc1[4] = NOW, NOW + 11
    assert reason(verify(code(hc1, prefix="HC1:"), TRUST, NOW, options)) is (
        Reason.VALIDITY_TOO_LONG
    )
    unlimited = VerifyOptions(max_lifetime_s={})
    assert ok(verify(code(times(NOW, NOW + 10**6)), TRUST, NOW, unlimited))


@pytest.mark.parametrize(
    ("iat", "exp", "now", "accepted"),
    [
        (LIMIT - 100, LIMIT - 1, LIMIT - 50, True),
        (LIMIT - 100, LIMIT, LIMIT - 50, False),
        (-LIMIT + 1, -LIMIT + 100, -LIMIT + 50, True),
        (-LIMIT, -LIMIT + 100, -LIMIT + 50, False),
        (float(NOW - 10), float(NOW + 10), NOW, True),
        (NOW - 10.5, NOW + 10.9, NOW, True),
        (float(LIMIT - 100), float(LIMIT - 1), LIMIT - 50, True),
        (float(LIMIT - 100), float(LIMIT), LIMIT - 50, False),
        (-float(LIMIT), NOW, NOW, False),
        (float(-LIMIT + 1), float(-LIMIT + 100), -LIMIT + 50, True),
        (LIMIT, LIMIT + 100, LIMIT + 50, False),
        (-(2**64), NOW, NOW, False),
        (float("nan"), NOW + 10, NOW, False),
        (-float("inf"), NOW + 10, NOW, False),
        (True, NOW + 10, NOW, False),
        ("1790000000", NOW + 10, NOW, False),
    ],
)
def test_time_claim_range(iat, exp, now, accepted):
    """Times are integers or finite floats within ±2**40 s; bool, text, NaN and inf are not."""
    result = verify(code(times(iat, exp)), TRUST, now, VerifyOptions(max_lifetime_s={}))
    if accepted:
        assert ok(result).iat == int(iat) and result.exp == int(exp)
        assert type(result.iat) is int and type(result.exp) is int
    else:
        assert reason(result) is Reason.MALFORMED_CLAIMS


def test_text_limit_is_inclusive():
    """A text exactly max_text_chars long is read; one character more is oversize."""
    text = code()
    assert ok(verify(text, TRUST, NOW, VerifyOptions(max_text_chars=len(text))))
    shorter = VerifyOptions(max_text_chars=len(text) - 1)
    result = verify(text, TRUST, NOW, shorter)
    assert reason(result) is Reason.OVERSIZE and result.format == SSC1
    assert reason(verify("SSC1:" + "A" * 4091, TRUST, NOW)) is Reason.MALFORMED_BASE45
    assert reason(verify("SSC1:" + "A" * 4092, TRUST, NOW)) is Reason.OVERSIZE


def test_payload_limit_is_inclusive():
    """A COSE message exactly max_payload_bytes long is read; one byte more is oversize."""
    text = code()
    size = len(zlib.decompress(base45.decode(text[5:])))
    assert ok(verify(text, TRUST, NOW, VerifyOptions(max_payload_bytes=size)))
    result = verify(text, TRUST, NOW, VerifyOptions(max_payload_bytes=size - 1))
    assert reason(result) is Reason.OVERSIZE and result.format == SSC1
    limit = DEFAULT_OPTIONS.max_payload_bytes
    assert limit == 64 * 1024
    at_limit = "SSC1:" + base45.encode(zlib.compress(b"\x00" * limit, 9))
    over = "SSC1:" + base45.encode(zlib.compress(b"\x00" * (limit + 1), 9))
    assert reason(verify(at_limit, TRUST, NOW)) is Reason.MALFORMED_COSE
    assert reason(verify(over, TRUST, NOW)) is Reason.OVERSIZE


BOMB = zlib.compress(b"\x00" * (20 * 1024 * 1024), 9)  # 20 MB of zeros in about 20 kB


def test_zip_bomb_is_cut_at_the_limit():
    """A stream that inflates to 20 MB is oversize, and is never inflated beyond the limit:
    verify allocates well under 1 MB for it."""
    text = "SSC1:" + base45.encode(BOMB)
    options = VerifyOptions(max_text_chars=len(text))
    tracemalloc.start()
    try:
        result = verify(text, TRUST, NOW, options)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert reason(result) is Reason.OVERSIZE
    assert peak < 1024 * 1024


def test_truncated_zlib_stream():
    """A zlib stream cut short (no end marker) is malformed_zlib, not a short payload."""
    cose = zlib.decompress(base45.decode(code()[5:]))
    cut = zlib.compressobj(9)
    partial = cut.compress(cose) + cut.flush(zlib.Z_SYNC_FLUSH)
    assert reason(verify("SSC1:" + base45.encode(partial), TRUST, NOW)) is Reason.MALFORMED_ZLIB


# ------------------------------------------------------------------ SSC1 claims


@pytest.mark.parametrize("label", [1, 6, 4, 7])
def test_ssc1_requires_iss_iat_exp_and_cti(label):
    """Each of iss, iat, exp and cti is required in an SSC1 code."""
    claims = ssc1_claims()
    del claims[label]
    assert reason(verify(code(claims), TRUST, NOW)) is Reason.MALFORMED_CLAIMS


@pytest.mark.parametrize(("length", "accepted"), [(15, False), (16, True), (17, False)])
def test_ssc1_cti_is_16_bytes(length, accepted):
    """The SSC1 code id is exactly 16 bytes."""
    result = verify(code(ssc1_claims(**{"7": None}) | {7: bytes(length)}), TRUST, NOW)
    assert (reason(result) is None) is accepted
    if not accepted:
        assert reason(result) is Reason.MALFORMED_CLAIMS


@pytest.mark.parametrize("field", sorted(SSC1_BODY))
def test_ssc1_identity_fields_are_required(field):
    """Every field of the -261 map, version included, is required."""
    claims = ssc1_claims()
    del claims[-261][field]
    assert reason(verify(code(claims), TRUST, NOW)) is Reason.MALFORMED_CLAIMS


def test_ssc1_body_must_be_a_map():
    """-261 must be a map."""
    for body in (None, [SSC1_BODY], "x"):
        claims = ssc1_claims()
        claims[-261] = body
        assert reason(verify(code(claims), TRUST, NOW)) is Reason.MALFORMED_CLAIMS


def test_verified_code_fields():
    """A VerifiedCode exposes the claims: format, kid, iss, iat, exp, cti, body, identity."""
    result = ok(verify(code(), TRUST, NOW))
    assert result.ok and result.format == SSC1 and result.kid == KID
    assert (result.iss, result.iat, result.exp) == ("CN-SH", NOW - 10, NOW + 110)
    assert result.cti == bytes(range(16)) and result.body == SSC1_BODY
    assert result.identity == Identity(**{k: v for k, v in SSC1_BODY.items() if k != "v"})
    assert result.identity.to_claim() == SSC1_BODY


# ------------------------------------------------------------------ Identity rules


VALID = {k: v for k, v in SSC1_BODY.items() if k != "v"}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("idt", "RIC"),
        ("idt", "PP"),
        ("idt", "HMT"),
        ("idt", "FPR"),
        ("idn", "1"),
        ("idn", "A" * 32),
        ("idn", "E12345678"),
        ("nat", "HKG"),
        ("nm", "a"),
        ("nm", "名" * 64),
        ("nm", "ZHANG San"),
        ("dob", "2000-02-29"),
        ("dob", "0000-00-00"),
        ("st", "Y"),
        ("st", "R"),
    ],
)
def test_identity_accepts(field, value):
    """Values at the edges of each identity rule are accepted."""
    assert getattr(Identity(**(VALID | {field: value})), field) == value


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("idt", "ric"),
        ("idt", "ID"),
        ("idt", ""),
        ("idn", ""),
        ("idn", "A" * 33),
        ("idn", "１２３"),  # fullwidth digits: alphanumeric, not ASCII
        ("idn", "AB-12"),
        ("idn", "AB 12"),
        ("nat", "CH"),
        ("nat", "CHNA"),
        ("nat", "chn"),
        ("nat", "C1N"),
        ("nat", "ÄBC"),  # upper-case letters, not ASCII
        ("nm", ""),
        ("nm", "名" * 65),
        ("nm", "a\nb"),
        ("dob", "1949/12/31"),
        ("dob", "1949-12-3"),
        ("dob", "1949-12-311"),
        ("dob", "1949-1a-31"),
        ("dob", "1949-a2-31"),
        ("dob", "1949-12-a1"),
        ("dob", "1949-12-3a"),
        ("dob", "194a-12-31"),
        ("dob", "a949-12-31"),
        ("dob", "１９４９-12-31"),
        ("dob", "19491-2-31"),
        ("dob", "1949-123-1"),
        ("dob", "abcd-ef-gh"),
        ("st", "g"),
        ("st", "B"),
        ("st", "GY"),
        ("nm", b"bytes"),
        ("idn", 123),
    ],
)
def test_identity_refuses(field, value):
    """Each identity rule refuses values just outside it, through verify too."""
    with pytest.raises((ValueError, TypeError)):
        Identity(**(VALID | {field: value}))
    claims = ssc1_claims()
    claims[-261][field] = value
    assert reason(verify(code(claims), TRUST, NOW)) is Reason.MALFORMED_CLAIMS


# ------------------------------------------------------------------ keys sharing a kid


def test_several_keys_share_a_kid():
    """Under one kid, the key that verifies wins, whatever the order and the other keys."""
    stranger = ec.generate_private_key(ec.SECP256R1())
    wrong = trusted(stranger, kid=KID)
    expired = trusted(EC_KEY, not_after=NOW - 1)
    right = trusted(EC_KEY)
    for keys in ([wrong, right], [right, wrong], [expired, right], [right, expired]):
        assert ok(verify(code(), TrustList(keys), NOW))


def test_several_keys_under_a_kid_all_fail():
    """When no key under the kid verifies, the reason is the last key's."""
    wrong = trusted(ec.generate_private_key(ec.SECP256R1()), kid=KID)
    expired = trusted(EC_KEY, not_after=NOW - 1)
    not_yet = trusted(EC_KEY, not_before=NOW + 1)
    hc1_only = trusted(EC_KEY, formats=frozenset({HC1}))
    cases = [
        ([wrong], Reason.BAD_SIGNATURE),
        ([expired], Reason.KEY_NOT_VALID),
        ([not_yet], Reason.KEY_NOT_VALID),
        ([hc1_only], Reason.ISSUER_NOT_TRUSTED),
        ([expired, wrong], Reason.BAD_SIGNATURE),
        ([wrong, expired], Reason.KEY_NOT_VALID),
        ([wrong, hc1_only], Reason.ISSUER_NOT_TRUSTED),
        ([hc1_only, wrong], Reason.BAD_SIGNATURE),
    ]
    for keys, expected in cases:
        result = verify(code(), TrustList(keys), NOW)
        assert reason(result) is expected, keys
        assert result.kid == KID and result.format == SSC1


def test_key_validity_edges():
    """A key is valid from not_before to not_after inclusive."""
    assert ok(verify(code(), TrustList([trusted(EC_KEY, not_before=NOW, not_after=NOW)]), NOW))


# ------------------------------------------------------------------ format and kid on rejections


@pytest.mark.parametrize(
    ("text", "expected", "fmt"),
    [
        ("hello", Reason.MALFORMED_PREFIX, None),
        ("SSC1:abc", Reason.MALFORMED_BASE45, SSC1),
        ("HC1:abc", Reason.MALFORMED_BASE45, HC1),
        ("HC1:" + "A" * 5000, Reason.OVERSIZE, HC1),
        ("SSC1:" + base45.encode(b"junk"), Reason.MALFORMED_ZLIB, SSC1),
        ("HC1:" + base45.encode(zlib.compress(b"\x83")), Reason.MALFORMED_COSE, HC1),
    ],
)
def test_early_rejections_carry_the_format(text, expected, fmt):
    """A rejection before the COSE is read says which format the prefix named, and no kid."""
    result = verify(text, TRUST, NOW)
    assert reason(result) is expected
    assert result.format == fmt and result.kid is None and not result.ok


def test_rejections_after_the_cose_carry_the_kid():
    """Once the COSE is read, every rejection names the kid (unknown or not)."""
    unknown = TrustList([trusted(ED_KEY)])
    for text, trust in (
        (code(), unknown),
        (code(ssc1_claims(**{"6": None}) | {6: "x"}), TRUST),
        (code(times(NOW - 300, NOW - 200)), TRUST),
    ):
        result = verify(text, trust, NOW)
        assert isinstance(result, Rejection) and result.kid == KID and result.format == SSC1


# ------------------------------------------------------------------ issuing


def test_issued_codes_are_compressed_at_the_highest_level():
    """issue_ssc1 compresses with zlib level 9: the smallest QR for the same claims."""
    identity = Identity(**VALID)
    text = issue_ssc1(
        identity=identity, key=EC_KEY, kid=KID, iss="CN-SH", iat=NOW, ttl_s=60, cti=bytes(16)
    )
    cose = zlib.decompress(base45.decode(text.removeprefix("SSC1:")))
    assert text == "SSC1:" + base45.encode(zlib.compress(cose, 9))
    result = ok(verify(text, TRUST, NOW))
    assert (result.iat, result.exp, result.identity) == (NOW, NOW + 60, identity)


def test_encode_code_uses_the_format_prefix():
    """encode_code wraps HC1 claims behind HC1: and they verify as HC1."""
    text = encode_code(HC1, hc1_claims(), EC_KEY, KID)
    assert text.startswith("HC1:") and ok(verify(text, TRUST, NOW)).format == HC1


def test_check_signature_covers_external_aad():
    """check_signature verifies over the external AAD it is given, and only that."""
    cose = sign1(payload=cbor2.dumps(ssc1_claims()), key=EC_KEY, kid=KID, external_aad=b"aad")
    message = decode_sign1(cose)
    assert check_signature(message, SSC1, TRUST, NOW, external_aad=b"aad").kid == KID
    with pytest.raises(CodeRejected) as caught:
        check_signature(message, SSC1, TRUST, NOW)
    assert caught.value.reason is Reason.BAD_SIGNATURE


@pytest.mark.parametrize("text", [None, b"SSC1:abc", 42])
def test_text_that_is_not_a_string(text):
    """A caller passing bytes or None gets an internal rejection with no format, no raise."""
    result = verify(text, TRUST, NOW)
    assert isinstance(result, Rejection) and result.internal
    assert result.format is None and result.kid is None
