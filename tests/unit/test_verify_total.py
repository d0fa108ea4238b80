"""verify() is total: odd CBOR anywhere in a code is a typed Rejection, never an exception.

Each case here once raised out of verify() (TypeError, AttributeError, decimal errors) and
would have stopped a lane. The property tests in tests/property/test_verify_fuzz.py search
the same space at random; these pin the cases that were found.
"""

from __future__ import annotations

import cbor2
import pytest
import structlog

from suishen.drivers.base import RawScan, ScanKind
from suishen.gateway.lists import Lists
from suishen.gateway.pipeline import ScanPipeline
from suishen.gateway.policy import LaneInfo, SiteRules
from suishen.gateway.records import Direction, SiteKind
from suishen.gateway.state import SiteState
from suishen.protocol import cbor
from suishen.protocol.codes import DEFAULT_OPTIONS, Rejection, VerifiedCode, verify
from suishen.protocol.reasons import Reason
from suishen.protocol.trust import TrustList, trusted_key_from_public_key
from tests.codekit import SSC1_BODY, alg, envelope, hc1_claims, kid, ssc1_claims
from tests.conftest import NOW

DECIMAL_FRACTION_INVALID = cbor2.CBORTag(4, [1, "x"])  # cbor2: decimal.InvalidOperation
BIGFLOAT_OVERFLOW = cbor2.CBORTag(5, [10**20, 1])  # cbor2: decimal.Overflow
DECIMAL_HUGE_EXPONENT = cbor2.CBORTag(4, [10**20, 1])  # cbor2: OverflowError
ODD_VALUES = [DECIMAL_FRACTION_INVALID, BIGFLOAT_OVERFLOW, DECIMAL_HUGE_EXPONENT, [], {}, [1]]


@pytest.fixture
def both_trust(issuer_key) -> TrustList:
    public = issuer_key.public_key()
    return TrustList([trusted_key_from_public_key(public, issuer="CN-SH", formats=["SSC1", "HC1"])])


@pytest.fixture
def site_pipeline():
    def make(trust: TrustList) -> ScanPipeline:
        return ScanPipeline(
            lane=LaneInfo(
                site_id="S1", kind=SiteKind.BUILDING, lane_id="L1", direction=Direction.IN
            ),
            rules=SiteRules(),
            state=SiteState(site_id="S1", kind=SiteKind.BUILDING),
            lists=Lists(trust=trust),
            pepper=b"p" * 32,
            verify_options=DEFAULT_OPTIONS,
        )

    return make


def scan(text: str) -> RawScan:
    return RawScan(device_id="qr1", kind=ScanKind.QR, text=text, received_mono=0, received_at=NOW)


def rejection(result) -> Rejection:
    assert isinstance(result, Rejection), result
    assert not result.internal, result.detail
    return result


@pytest.mark.parametrize("value", ODD_VALUES, ids=repr)
def test_odd_alg_in_the_protected_header_is_malformed_cose(issuer_key, both_trust, value):
    """alg as a list, map or decimal tag in the signed protected header is malformed_cose."""
    text = envelope(issuer_key, payload=cbor2.dumps(ssc1_claims()), protected={1: value})
    assert rejection(verify(text, both_trust, NOW)).reason is Reason.MALFORMED_COSE


def test_text_alg_is_unsupported(issuer_key, both_trust):
    """A text algorithm name is valid COSE but not one we verify: unsupported_alg."""
    text = envelope(issuer_key, payload=cbor2.dumps(ssc1_claims()), protected={1: "ES256"})
    assert rejection(verify(text, both_trust, NOW)).reason is Reason.UNSUPPORTED_ALG


@pytest.mark.parametrize("value", ODD_VALUES, ids=repr)
def test_odd_values_in_the_unprotected_header(issuer_key, both_trust, value):
    """An odd alg or kid in the unprotected header is malformed_cose."""
    payload = cbor2.dumps(ssc1_claims())
    for unprotected in ({1: value}, {4: value}):
        text = envelope(issuer_key, payload=payload, protected={}, unprotected=unprotected)
        assert rejection(verify(text, both_trust, NOW)).reason is Reason.MALFORMED_COSE


@pytest.mark.parametrize("label", [1, 4, 6, 7, -261])
@pytest.mark.parametrize("value", ODD_VALUES, ids=repr)
def test_odd_values_in_signed_claims(issuer_key, both_trust, label, value):
    """Decimal tags and containers in any claim of a trusted issuer are malformed_claims."""
    claims = ssc1_claims()
    claims[label] = value
    text = envelope(issuer_key, payload=cbor2.dumps(claims))
    assert rejection(verify(text, both_trust, NOW)).reason is Reason.MALFORMED_CLAIMS


@pytest.mark.parametrize("field", sorted(set(SSC1_BODY) - {"v"}))
@pytest.mark.parametrize("value", [b"bytes", ["list"], {"k": "v"}, 7, None, *ODD_VALUES[:2]])
def test_identity_fields_must_be_text(issuer_key, both_trust, field, value):
    """nm as bytes or any identity field as a list, map or number is malformed_claims."""
    claims = ssc1_claims()
    claims[-261][field] = value
    text = envelope(issuer_key, payload=cbor2.dumps(claims))
    assert rejection(verify(text, both_trust, NOW)).reason is Reason.MALFORMED_CLAIMS


@pytest.mark.parametrize("version", [True, 1.0, "1", cbor2.CBORTag(4, [0, 1])], ids=repr)
def test_identity_version_must_be_the_integer_1(issuer_key, both_trust, version):
    """v: true or v: 1.0 equal 1 in Python, but the -261 version is the integer 1."""
    claims = ssc1_claims()
    claims[-261]["v"] = version
    text = envelope(issuer_key, payload=cbor2.dumps(claims))
    assert rejection(verify(text, both_trust, NOW)).reason is Reason.MALFORMED_CLAIMS


@pytest.mark.parametrize("value", [*ODD_VALUES, float("inf"), float("nan"), 2**64, -(2**64)])
def test_hc1_times_and_body(issuer_key, both_trust, value):
    """HC1 times must be finite numbers, and the DCC a map: odd values are malformed_claims."""
    for label in (4, 6, -260):
        claims = hc1_claims()
        claims[label] = value
        text = envelope(issuer_key, payload=cbor2.dumps(claims), prefix="HC1:")
        assert rejection(verify(text, both_trust, NOW)).reason is Reason.MALFORMED_CLAIMS


def test_decimal_tag_as_the_whole_payload(issuer_key, both_trust):
    """A signed payload that is one bigfloat is malformed_claims, not decimal.Overflow."""
    text = envelope(issuer_key, payload=cbor2.dumps(BIGFLOAT_OVERFLOW))
    assert rejection(verify(text, both_trust, NOW)).reason is Reason.MALFORMED_CLAIMS


def test_deep_nesting_is_refused(issuer_key, both_trust):
    """A claim nested 10 000 arrays deep is malformed_claims (bounded, no RecursionError)."""
    claims = ssc1_claims()
    claims[-261]["extra"] = "DEEP"
    payload = cbor2.dumps(claims).replace(cbor2.dumps("DEEP"), b"\x81" * 10_000 + b"\x00")
    text = envelope(issuer_key, payload=payload)
    assert rejection(verify(text, both_trust, NOW)).reason is Reason.MALFORMED_CLAIMS


def test_shared_reference_cycle_is_refused(issuer_key, both_trust):
    """Tags 28/29 (value sharing) are not interpreted, so no cyclic structure reaches a lane."""
    claims = ssc1_claims()
    claims[-261]["extra"] = "LOOP"
    loop = b"\xd8\x1c\x81\xd8\x1d\x00"  # 28([29(0)]): a list that contains itself in cbor2
    payload = cbor2.dumps(claims).replace(cbor2.dumps("LOOP"), loop)
    result = verify(envelope(issuer_key, payload=payload), both_trust, NOW)
    assert isinstance(result, VerifiedCode)  # an unknown extra key is allowed...
    extra = result.body["extra"]
    assert extra == cbor2.CBORTag(28, [cbor2.CBORTag(29, 0)])  # ...and stays a raw tag


def test_valid_codes_still_verify(issuer_key, both_trust):
    """The strict decoder accepts what issuers send: SSC1 and HC1, untagged CWT-wrapped too."""
    ssc1 = envelope(issuer_key, payload=cbor2.dumps(ssc1_claims()))
    hc1 = envelope(issuer_key, payload=cbor2.dumps(hc1_claims()), prefix="HC1:")
    assert isinstance(verify(ssc1, both_trust, NOW), VerifiedCode)
    assert isinstance(verify(hc1, both_trust, NOW), VerifiedCode)
    unprotected_kid = envelope(
        issuer_key,
        payload=cbor2.dumps(ssc1_claims()),
        protected={1: alg(issuer_key)},
        unprotected={4: kid(issuer_key)},
    )
    assert isinstance(verify(unprotected_kid, both_trust, NOW), VerifiedCode)


def test_an_unexpected_exception_is_an_internal_rejection(issuer_key, both_trust):
    """A bug inside verify (here a caller passing no clock) is a flagged Rejection, not a raise."""
    text = envelope(issuer_key, payload=cbor2.dumps(ssc1_claims()))
    result = verify(text, both_trust, None)  # type: ignore[arg-type]
    assert isinstance(result, Rejection) and result.internal
    assert result.detail == "internal error: TypeError" and result.format == "SSC1"
    assert result.kid == kid(issuer_key)
    assert result.reason is Reason.MALFORMED_CLAIMS  # the signature had checked out


def test_an_unexpected_exception_before_the_signature(issuer_key):
    """A bug before the signature has checked out is reported as malformed_cose."""
    public = issuer_key.public_key()
    trust = TrustList([trusted_key_from_public_key(public, issuer="CN-SH", not_before=NOW - 1)])
    text = envelope(issuer_key, payload=cbor2.dumps(ssc1_claims()))
    result = verify(text, trust, None)  # type: ignore[arg-type]
    assert isinstance(result, Rejection) and result.internal
    assert result.reason is Reason.MALFORMED_COSE and result.kid == kid(issuer_key)


def test_the_pipeline_logs_an_internal_rejection(issuer_key, both_trust, site_pipeline):
    """The gateway logs an error line for a verifier bug, naming no person, and still decides."""
    text = envelope(issuer_key, payload=cbor2.dumps(ssc1_claims()))
    pipeline = site_pipeline(both_trust)
    with structlog.testing.capture_logs() as logs:
        classified = pipeline.classify(scan(text), None)
    assert isinstance(classified.subject, Rejection)
    errors = [e for e in logs if e["event"] == "verifier internal error"]
    assert errors == [
        {
            "event": "verifier internal error",
            "log_level": "error",
            "detail": "internal error: TypeError",
            "format": "SSC1",
        }
    ]
    with structlog.testing.capture_logs() as logs:
        pipeline.classify(scan(text + "x"), NOW)
    assert logs == []  # an ordinary rejection is the lane's business, not an error


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"", "truncated"),
        (b"\x82\x01", "longer than the input"),
        (b"\x83\x01\x81\x02", "truncated"),
        (b"\x01\x02", "trailing"),
        (b"\x1c", "reserved"),
        (b"\xff", "break"),
        (b"\x9f\x01", "truncated"),
        (b"\x5f\x61a\xff", "chunk"),
        (b"\x62\xc3\x28", "UTF-8"),
        (b"\xa1\x81\x00\x00", "map key"),
        (b"\xa1\xf5\x00", "map key"),
        (b"\x9b" + b"\xff" * 8, "longer than the input"),
        (b"\xf8\x10", "simple value"),
        (b"\x81" * 17 + b"\x00", "deeper"),
        (b"\x1f", "indefinite"),
    ],
)
def test_strict_decoder_refuses(data, problem):
    """protocol.cbor refuses each malformed shape with CBORInvalid naming the problem."""
    with pytest.raises(cbor.CBORInvalid, match=problem):
        cbor.loads(data)


def test_strict_decoder_round_trips_plain_values():
    """Plain CBOR values decode as cbor2 would; tags come back raw, not interpreted."""
    value = {
        1: [0, -1, 2**64 - 1, -(2**64), 1.5, True, False, None, "文字", b"\x00"],
        "m": {b"k": [[], {}]},
    }
    assert cbor.loads(cbor2.dumps(value)) == value
    assert cbor.loads(bytes.fromhex("c48221196ab3")) == cbor2.CBORTag(4, [-2, 27315])
    assert cbor.loads(bytes.fromhex("5f42010243030405ff")) == b"\x01\x02\x03\x04\x05"
    assert cbor.loads(bytes.fromhex("7f657374726561646d696e67ff")) == "streaming"
    assert cbor.loads(bytes.fromhex("bf61610161629f0203ffff")) == {"a": 1, "b": [2, 3]}
    assert cbor.loads(bytes.fromhex("f93c00")) == 1.0 and cbor.loads(b"\xfa\x3f\xc0\x00\x00") == 1.5
    assert cbor.loads(b"\xf7") is cbor2.undefined
    assert cbor.loads(b"\xf0") == cbor2.CBORSimpleValue(16)
    assert cbor.loads(b"\xf8\xff") == cbor2.CBORSimpleValue(255)
