"""The X-Suishen-Signature scheme (docs/WEBHOOKS.md): what the hub signs verifies with the
same secret inside the 5-minute window, and any change of body, timestamp or secret, any
malformed header, is refused with its reason."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from suishen.central.alerts.signing import SignatureError, sign, verify

SECRET = b"s" * 32
T = 1_800_000_000


def test_the_header_is_the_documented_hmac() -> None:
    """t=<ts>,v1=<hex HMAC-SHA256(secret, f"{t}.{body}")>, as docs/WEBHOOKS.md says."""
    body = b'{"a": 1}'
    mac = hmac.new(SECRET, b"1800000000." + body, hashlib.sha256).hexdigest()
    assert sign(SECRET, body, T) == f"t={T},v1={mac}"


@given(st.binary(max_size=200), st.integers(-300, 300))
def test_a_signature_verifies_within_the_window(body: bytes, skew: int) -> None:
    """Signed at T, checked at T +- 300 s: the matching secret's name comes back."""
    header = sign(SECRET, body, T)
    name, _ = verify(header, body, [("other", b"o" * 32), ("police", SECRET)], now=T + skew)
    assert name == "police"


@given(st.binary(min_size=1, max_size=100), st.data())
def test_any_changed_byte_is_a_mismatch(body: bytes, data: st.DataObject) -> None:
    """Flipping any byte of the body breaks the signature."""
    i = data.draw(st.integers(0, len(body) - 1))
    changed = body[:i] + bytes([body[i] ^ 1]) + body[i + 1 :]
    with pytest.raises(SignatureError) as info:
        verify(sign(SECRET, body, T), changed, [("police", SECRET)], now=T)
    assert info.value.reason == "mismatch"


@pytest.mark.parametrize(
    ("header", "now", "reason"),
    [
        (None, T, "missing"),
        ("", T, "missing"),
        ("v1=00", T, "malformed"),
        (f"t={T}", T, "malformed"),
        ("t=-5,v1=00", T, "malformed"),
        ("t=١٢,v1=00", T, "malformed"),  # non-ASCII digits
        (f"t={T},t={T},v1=00", T, "malformed"),
        ("x" * 2000, T, "malformed"),
        (sign(SECRET, b"{}", T), T + 301, "stale"),
        (sign(SECRET, b"{}", T), T - 301, "stale"),
        (sign(b"w" * 32, b"{}", T), T, "mismatch"),
        (sign(SECRET, b"{}", T).replace(f"t={T}", f"t={T + 1}"), T, "mismatch"),
    ],
)
def test_bad_headers_are_refused_with_a_reason(header: str | None, now: int, reason: str) -> None:
    """Each refusal names why: missing, malformed, stale or mismatch."""
    with pytest.raises(SignatureError) as info:
        verify(header, b"{}", [("police", SECRET)], now=now)
    assert info.value.reason == reason
