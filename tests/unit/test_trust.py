"""Trust files: parsing, the kid rule, validity, and clear errors naming the bad entry."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID

from suishen.protocol.cose import kid_of, spki_der
from suishen.protocol.errors import TrustListError
from suishen.protocol.trust import TrustList, parse_iso8601, trusted_key_from_public_key

VALID_SPKI = base64.b64encode(spki_der(ed25519.Ed25519PrivateKey.generate().public_key())).decode()


def spki_entry(public, **extra) -> dict:
    entry = {"issuer": "CN-SH", "formats": ["SSC1"]}
    entry["spki"] = base64.b64encode(spki_der(public)).decode()
    entry.update(extra)
    return entry


def test_kid_is_computed_when_absent():
    """An entry without kid gets the first 8 bytes of SHA-256 of its SPKI DER."""
    public = ed25519.Ed25519PrivateKey.generate().public_key()
    trust = TrustList.from_json({"version": 1, "keys": [spki_entry(public)]})
    (key,) = trust.keys()
    assert key.kid == kid_of(spki_der(public)) and len(key.kid) == 8


def test_wrong_kid_is_refused():
    """A kid that does not match the anchor's hash is an error naming the entry."""
    public = ed25519.Ed25519PrivateKey.generate().public_key()
    entry = spki_entry(public, kid=base64.b64encode(b"12345678").decode())
    with pytest.raises(TrustListError, match=r"keys\[0\].*kid"):
        TrustList.from_json({"version": 1, "keys": [entry]})


def test_round_trip_through_json():
    """to_json and from_json keep kid, issuer, formats and validity."""
    public = ec.generate_private_key(ec.SECP256R1()).public_key()
    key = trusted_key_from_public_key(
        public, issuer="CN-SH", formats=["SSC1", "HC1"], not_before=1000.0, not_after=2000.0
    )
    again = TrustList.from_json(TrustList([key]).to_json()).keys()[0]
    assert (again.kid, again.issuer, again.formats) == (key.kid, key.issuer, key.formats)
    assert (again.not_before, again.not_after) == (1000.0, 2000.0)


def test_certificate_anchor_uses_its_validity_and_cert_hash():
    """A certificate entry's kid hashes the certificate DER and its validity applies."""
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "signer")])
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(1)
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(days=30))
        .sign(private, hashes.SHA256())
    )
    der = cert.public_bytes(serialization.Encoding.DER)
    entry = {"issuer": "CN-SH", "certificate": base64.b64encode(der).decode()}
    (key,) = TrustList.from_json({"version": 1, "keys": [entry]}).keys()
    assert key.kid == kid_of(der)
    assert key.valid_at(start.timestamp() + 1)
    assert not key.valid_at((start + dt.timedelta(days=31)).timestamp())


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "JSON object"),
        ({"version": 2, "keys": []}, "version"),
        ({"version": 1}, "keys"),
        ({"version": 1, "keys": [{"issuer": "X"}]}, "spki"),
        ({"version": 1, "keys": [{"issuer": "X", "spki": "!!"}]}, "base64"),
        ({"version": 1, "keys": [{"issuer": "X", "spki": "AAAA"}]}, "SubjectPublicKeyInfo"),
        ({"version": 1, "keys": [{"spki": "AAAA"}]}, "issuer"),
        (
            {"version": 1, "keys": [{"issuer": "X", "spki": VALID_SPKI, "formats": ["QR9"]}]},
            "formats",
        ),
        ({"version": 1, "keys": [{"issuer": "X", "spki": "AAAA", "not_after": "soon"}]}, "ISO"),
    ],
)
def test_bad_trust_files_get_clear_errors(document, message):
    """Each malformed trust file raises TrustListError saying what is wrong."""
    with pytest.raises(TrustListError, match=message):
        TrustList.from_json(document)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2021-05-30T13:38:52Z", 1622381932.0),
        ("2021-05-30T13:38:52", 1622381932.0),
        ("2021-05-30T15:38:52+02:00", 1622381932.0),
        ("2021-05-30T13:38:52.000+0000", 1622381932.0),
        ("2021-05-30T13:38:52.1234567Z", 1622381932.123456),
    ],
)
def test_iso8601_variants(text, expected):
    """The clock formats of the DCC data parse, zone-less ones as UTC."""
    assert parse_iso8601(text) == pytest.approx(expected)
