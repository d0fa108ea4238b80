"""verify(): one VerifiedCode or one Rejection per input, with every reason code of DESIGN §3."""

from __future__ import annotations

import secrets
import zlib
from pathlib import Path

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from suishen.protocol import base45, codes
from suishen.protocol.codes import Rejection, VerifiedCode, VerifyOptions, verify
from suishen.protocol.cose import decode_sign1, kid_of, sign1, spki_der, verify_sign1
from suishen.protocol.reasons import VERIFICATION_REASONS, Reason
from suishen.protocol.trust import TrustList, trusted_key_from_public_key
from tests.conftest import NOW, identity


def reason_of(result) -> Reason | None:
    return result.reason if isinstance(result, Rejection) else None


def wrap(cose: bytes, prefix: str = "SSC1:") -> str:
    return prefix + base45.encode(zlib.compress(cose))


def test_valid_code_verifies_with_its_claims(make_code, trust):
    """A fresh code from a trusted issuer verifies and carries its identity and times."""
    result = verify(make_code(), trust, NOW)
    assert isinstance(result, VerifiedCode)
    assert result.format == "SSC1" and result.iss == "CN-SH"
    assert result.exp - result.iat == 120
    assert len(result.cti) == 16
    assert result.identity.nm == "张三明" and result.identity.st == "G"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", Reason.MALFORMED_PREFIX),
        ("HELLO", Reason.MALFORMED_PREFIX),
        ("ssc1:ABC", Reason.MALFORMED_PREFIX),
        ("SSC1:" + "A" * 4092, Reason.OVERSIZE),
        ("SSC1:abc", Reason.MALFORMED_BASE45),
        ("SSC1:A", Reason.MALFORMED_BASE45),
        ("SSC1:GGW", Reason.MALFORMED_BASE45),  # triple above 0xFFFF
        ("SSC1:" + base45.encode(b"not zlib at all"), Reason.MALFORMED_ZLIB),
        ("SSC1:" + base45.encode(zlib.compress(b"\xff\xfe")), Reason.MALFORMED_COSE),
        ("SSC1:" + base45.encode(zlib.compress(b"x" * 70_000)), Reason.OVERSIZE),
        ("SSC1:" + base45.encode(zlib.compress(b"abc")[:-3]), Reason.MALFORMED_ZLIB),
    ],
)
def test_envelope_faults_have_their_reason(text, reason, trust):
    """Each way the envelope can be broken is reported with its own reason code."""
    assert reason_of(verify(text, trust, NOW)) is reason


def test_unsupported_alg(trust):
    """A COSE_Sign1 with an algorithm other than ES256/EdDSA is unsupported_alg."""
    protected = cbor2.dumps({1: -35, 4: b"12345678"})
    cose = cbor2.dumps(cbor2.CBORTag(18, [protected, {}, b"payload", b"s" * 96]))
    assert reason_of(verify(wrap(cose), trust, NOW)) is Reason.UNSUPPORTED_ALG


def test_unknown_kid(make_code):
    """A code whose kid no trusted key has is unknown_kid."""
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    trust = TrustList([trusted_key_from_public_key(other, issuer="CN-SH")])
    assert reason_of(verify(make_code(), trust, NOW)) is Reason.UNKNOWN_KID


def test_key_not_valid(make_code, issuer_key):
    """A trusted key used outside its not_before..not_after is key_not_valid."""
    expired_key = trusted_key_from_public_key(
        issuer_key.public_key(), issuer="CN-SH", not_before=NOW - 100, not_after=NOW - 50
    )
    result = verify(make_code(), TrustList([expired_key]), NOW)
    assert reason_of(result) is Reason.KEY_NOT_VALID


def test_issuer_not_trusted_for_other_issuer(make_code, trust):
    """A code claiming another issuer than its key is trusted for is issuer_not_trusted."""
    assert reason_of(verify(make_code(iss="CN-BJ"), trust, NOW)) is Reason.ISSUER_NOT_TRUSTED


def test_issuer_not_trusted_for_other_format(make_code, issuer_key):
    """A key trusted only for HC1 does not make an SSC1 code valid."""
    key = trusted_key_from_public_key(issuer_key.public_key(), issuer="CN-SH", formats=["HC1"])
    result = verify(make_code(), TrustList([key]), NOW)
    assert reason_of(result) is Reason.ISSUER_NOT_TRUSTED


def test_bad_signature_on_tampered_payload(make_code, trust, issuer_key):
    """Changing one claim after signing is bad_signature."""
    message = decode_sign1(zlib.decompress(base45.decode(make_code()[5:])))
    claims = cbor2.loads(message.payload)
    claims[-261]["st"] = "G" if claims[-261]["st"] != "G" else "Y"
    forged = cbor2.dumps(
        cbor2.CBORTag(18, [message.protected_raw, {}, cbor2.dumps(claims), message.signature])
    )
    assert reason_of(verify(wrap(forged), trust, NOW)) is Reason.BAD_SIGNATURE


@pytest.mark.parametrize("mangle", ["der", "short", "long", "zero"])
def test_bad_signature_wrong_form(make_code, trust, mangle):
    """A signature of the wrong length or form (DER instead of r||s) is bad_signature."""
    message = decode_sign1(zlib.decompress(base45.decode(make_code()[5:])))
    sig = message.signature
    bad = {
        "der": b"\x30\x44\x02\x20" + sig[:32] + b"\x02\x20" + sig[32:],
        "short": sig[:63],
        "long": sig + b"\x00",
        "zero": bytes(64),
    }[mangle]
    forged = cbor2.dumps(cbor2.CBORTag(18, [message.protected_raw, {}, message.payload, bad]))
    assert reason_of(verify(wrap(forged), trust, NOW)) is Reason.BAD_SIGNATURE


def test_algorithm_must_match_key_type():
    """An Ed25519 key cannot verify an ES256-labelled code, nor P-256 an EdDSA one."""
    ed_key = ed25519.Ed25519PrivateKey.generate()
    ec_key = ec.generate_private_key(ec.SECP256R1())
    kid = kid_of(spki_der(ed_key.public_key()))
    # Sign with the EC key but publish the Ed25519 key under the same kid.
    cose = sign1(payload=cbor2.dumps({1: "CN-SH"}), key=ec_key, kid=kid)
    trust = TrustList([trusted_key_from_public_key(ed_key.public_key(), issuer="CN-SH")])
    assert reason_of(verify(wrap(cose), trust, NOW)) is Reason.BAD_SIGNATURE


def test_p384_key_is_refused_for_es256():
    """ES256 needs a P-256 key; a P-384 key under that alg does not verify."""
    p384 = ec.generate_private_key(ec.SECP384R1())
    public = p384.public_key()
    trust = TrustList([trusted_key_from_public_key(public, issuer="CN-SH")])
    message = decode_sign1(
        sign1(payload=b"x", key=ec.generate_private_key(ec.SECP256R1()), kid=b"k")
    )
    assert not verify_sign1(message, public)
    assert len(trust) == 1


def test_not_yet_valid_and_skew(make_code, trust):
    """iat beyond now + skew is not_yet_valid; within the skew it is accepted."""
    assert reason_of(verify(make_code(iat=NOW + 61), trust, NOW)) is Reason.NOT_YET_VALID
    assert isinstance(verify(make_code(iat=NOW + 59), trust, NOW), VerifiedCode)


def test_expired_and_skew(make_code, trust):
    """exp before now - skew is expired; within the skew it is accepted."""
    assert reason_of(verify(make_code(iat=NOW - 300, ttl_s=239), trust, NOW)) is Reason.EXPIRED
    assert isinstance(verify(make_code(iat=NOW - 300, ttl_s=241), trust, NOW), VerifiedCode)


def test_skew_is_configurable(make_code, trust):
    """With a zero skew, a code one second past exp is expired."""
    text = make_code(iat=NOW - 121, ttl_s=120)
    assert reason_of(verify(text, trust, NOW, VerifyOptions(clock_skew_s=0))) is Reason.EXPIRED


def test_validity_too_long(make_code, trust):
    """A dynamic code living more than 300 s is validity_too_long."""
    assert reason_of(verify(make_code(ttl_s=301), trust, NOW)) is Reason.VALIDITY_TOO_LONG
    assert isinstance(verify(make_code(ttl_s=300), trust, NOW), VerifiedCode)


def _signed_claims(issuer_key, claims) -> str:
    kid = kid_of(spki_der(issuer_key.public_key()))
    return wrap(sign1(payload=cbor2.dumps(claims), key=issuer_key, kid=kid))


@pytest.mark.parametrize(
    "claims",
    [
        [1, 2, 3],
        {1: "CN-SH", 6: NOW, 4: NOW + 60},  # no cti, no -261
        {1: "CN-SH", 6: NOW, 4: NOW + 60, 7: b"short", -261: {"v": 1}},
        {1: 5, 6: NOW, 4: NOW + 60, 7: bytes(16), -261: {"v": 1}},
        {1: "CN-SH", 6: "now", 4: NOW + 60, 7: bytes(16), -261: {"v": 1}},
        {1: "CN-SH", 6: NOW, 4: NOW - 60, 7: bytes(16), -261: {"v": 1}},
        {
            1: "CN-SH",
            6: NOW,
            4: NOW + 60,
            7: bytes(16),
            -261: {
                "v": 1,
                "idt": "XX",
                "idn": "1",
                "nat": "CHN",
                "nm": "a",
                "dob": "2000-01-01",
                "st": "G",
            },
        },
        {
            1: "CN-SH",
            6: NOW,
            4: NOW + 60,
            7: bytes(16),
            -261: {
                "v": 1,
                "idt": "RIC",
                "idn": 5,
                "nat": "CHN",
                "nm": "a",
                "dob": "2000-01-01",
                "st": "G",
            },
        },
        {
            1: "CN-SH",
            6: NOW,
            4: NOW + 60,
            7: bytes(16),
            -261: {
                "v": 2,
                "idt": "RIC",
                "idn": "1",
                "nat": "CHN",
                "nm": "a",
                "dob": "2000-01-01",
                "st": "G",
            },
        },
    ],
)
def test_malformed_claims(issuer_key, trust, claims):
    """A correctly signed payload that is not a valid SSC1 claims map is malformed_claims."""
    assert reason_of(verify(_signed_claims(issuer_key, claims), trust, NOW)) is (
        Reason.MALFORMED_CLAIMS
    )


def test_every_verification_reason_is_exercised():
    """This module names every verification reason of DESIGN §3 in a test above."""
    source = Path(__file__).read_text(encoding="utf-8")
    missing = [r for r in VERIFICATION_REASONS if f"Reason.{r.name}" not in source]
    assert missing == []


def test_rejection_knows_the_format_and_kid(make_code, trust):
    """A rejection after the envelope still says which format and kid it concerned."""
    result = verify(make_code(iat=NOW - 1000), trust, NOW)
    assert isinstance(result, Rejection)
    assert result.format == "SSC1" and result.kid is not None and not result.ok


def test_issue_rejects_a_bad_cti(issuer_key):
    """issue_ssc1 insists on a 16-byte code id."""
    with pytest.raises(ValueError, match="cti"):
        codes.issue_ssc1(
            identity=identity(),
            key=issuer_key,
            kid=b"k",
            iss="X",
            iat=0,
            ttl_s=60,
            cti=secrets.token_bytes(8),
        )
