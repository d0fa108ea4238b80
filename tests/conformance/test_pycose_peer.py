"""Cross-check with an independent COSE implementation (pycose): each side verifies the other.

pycose signs SSC1 payloads that our verify() accepts, and our codes verify in pycose, for ES256
and EdDSA. A payload tampered after pycose signed it is refused by us.
"""

from __future__ import annotations

import secrets
import zlib

import cbor2
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from pycose.algorithms import EdDSA, Es256
from pycose.headers import KID, Algorithm
from pycose.keys import CoseKey
from pycose.messages import Sign1Message

from suishen.protocol import base45
from suishen.protocol.codes import VerifiedCode, issue_ssc1, verify
from suishen.protocol.cose import kid_of, spki_der
from suishen.protocol.reasons import Reason
from suishen.protocol.trust import TrustList, trusted_key_from_public_key
from tests.conftest import NOW, identity


def cose_key(private) -> CoseKey:
    if isinstance(private, ed25519.Ed25519PrivateKey):
        raw = serialization.Encoding.Raw
        return CoseKey.from_dict(
            {
                "KTY": "OKP",
                "CURVE": "ED25519",
                "X": private.public_key().public_bytes(raw, serialization.PublicFormat.Raw),
                "D": private.private_bytes(
                    raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
                ),
            }
        )
    numbers = private.private_numbers()
    return CoseKey.from_dict(
        {
            "KTY": "EC2",
            "CURVE": "P_256",
            "X": numbers.public_numbers.x.to_bytes(32, "big"),
            "Y": numbers.public_numbers.y.to_bytes(32, "big"),
            "D": numbers.private_value.to_bytes(32, "big"),
        }
    )


def claims() -> dict:
    return {
        1: "CN-SH",
        6: NOW,
        4: NOW + 120,
        7: secrets.token_bytes(16),
        -261: {
            "v": 1,
            "idt": "PP",
            "idn": "E12345678",
            "nat": "GBR",
            "nm": "SMITH JOHN",
            "dob": "1980-01-01",
            "st": "G",
        },
    }


@pytest.fixture(params=["ES256", "EdDSA"])
def private(request):
    if request.param == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    return ed25519.Ed25519PrivateKey.generate()


def pycose_sign(private, payload: bytes) -> bytes:
    alg = EdDSA if isinstance(private, ed25519.Ed25519PrivateKey) else Es256
    message = Sign1Message(
        phdr={Algorithm: alg, KID: kid_of(spki_der(private.public_key()))}, payload=payload
    )
    message.key = cose_key(private)
    return message.encode()


def test_pycose_signed_code_verifies_in_ours(private):
    """A code whose COSE_Sign1 pycose made verifies in our verifier."""
    text = "SSC1:" + base45.encode(zlib.compress(pycose_sign(private, cbor2.dumps(claims()))))
    trust = TrustList([trusted_key_from_public_key(private.public_key(), issuer="CN-SH")])
    result = verify(text, trust, NOW + 5)
    assert isinstance(result, VerifiedCode), result
    assert result.identity.idn == "E12345678"


def test_pycose_signature_over_other_payload_is_refused(private):
    """Swapping in another payload under pycose's signature is bad_signature for us."""
    signed = cbor2.loads(pycose_sign(private, cbor2.dumps(claims())))
    signed.value[2] = cbor2.dumps(claims())
    text = "SSC1:" + base45.encode(zlib.compress(cbor2.dumps(signed)))
    trust = TrustList([trusted_key_from_public_key(private.public_key(), issuer="CN-SH")])
    assert verify(text, trust, NOW + 5).reason is Reason.BAD_SIGNATURE


def test_our_code_verifies_in_pycose(private, make_code_for):
    """A code we issue decodes and verifies in pycose, with the same payload."""
    text = make_code_for(private)
    message = Sign1Message.decode(zlib.decompress(base45.decode(text[5:])))
    message.key = cose_key(private)
    assert message.verify_signature()
    assert cbor2.loads(message.payload)[1] == "CN-SH"


@pytest.fixture
def make_code_for():
    def make(private) -> str:
        return issue_ssc1(
            identity=identity(),
            key=private,
            kid=kid_of(spki_der(private.public_key())),
            iss="CN-SH",
            iat=NOW,
            ttl_s=120,
            cti=secrets.token_bytes(16),
        )

    return make
