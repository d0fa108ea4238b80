"""decode_sign1's path for the common outer shape (tag 18, protected {alg, kid} seen before,
an empty unprotected map, 64-byte signature) gives exactly the Sign1 of the generic decoder,
and every other shape still goes through the generic decoder with its errors."""

from __future__ import annotations

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from hypothesis import given, settings
from hypothesis import strategies as st

from suishen.protocol import cose
from suishen.protocol.errors import DecodeError

KEYS = [ec.generate_private_key(ec.SECP256R1()), ed25519.Ed25519PrivateKey.generate()]


def _kid(key: cose.PrivateKey) -> bytes:
    return cose.kid_of(cose.spki_der(key.public_key()))


def _generic(data: bytes) -> cose.Sign1 | DecodeError:
    """The generic decoder's answer: with the header cache empty the common path never runs."""
    saved = dict(cose._HEADERS_CACHE)
    cose._HEADERS_CACHE.clear()
    try:
        return cose.decode_sign1(data)
    except DecodeError as exc:
        return exc
    finally:
        cose._HEADERS_CACHE.update(saved)


def _warm(data: bytes) -> cose.Sign1 | DecodeError:
    try:
        cose.decode_sign1(data)  # fills the cache if the generic path accepts the headers
        return cose.decode_sign1(data)
    except DecodeError as exc:
        return exc


def _same(a: cose.Sign1 | DecodeError, b: cose.Sign1 | DecodeError) -> bool:
    if isinstance(a, DecodeError) or isinstance(b, DecodeError):
        return type(a) is type(b) and getattr(a, "reason", None) == getattr(b, "reason", None)
    return a == b


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("payload_size", [0, 30, 200, 300, 70_000])
@pytest.mark.parametrize("tagged", [True, False])
def test_signed_messages_decode_alike(key, payload_size, tagged) -> None:
    """Messages from sign1 (every payload length form) decode to the same Sign1 either way."""
    data = cose.sign1(payload=b"p" * payload_size, key=key, kid=_kid(key), tagged=tagged)
    generic = _generic(data)
    assert isinstance(generic, cose.Sign1)
    assert _warm(data) == generic


def test_kid_in_the_unprotected_header_is_never_reused() -> None:
    """Protected bytes whose kid came from the unprotected map are not cached: another
    message with the same protected bytes and no kid of its own gets kid b"", as generic."""
    protected_raw = cbor2.dumps({1: cose.ES256})
    with_kid = cbor2.dumps(cbor2.CBORTag(18, [protected_raw, {4: b"k1"}, b"p", b"s" * 64]))
    without = cbor2.dumps(cbor2.CBORTag(18, [protected_raw, {}, b"p", b"s" * 64]))
    assert cose.decode_sign1(with_kid).kid == b"k1"
    assert cose.decode_sign1(without).kid == b""
    assert _same(_warm(without), _generic(without))


@pytest.mark.parametrize(
    "tail",
    [b"", b"\x00", b"\x58\x3f" + b"s" * 63, b"\x58\x41" + b"s" * 65, b"\x40"],
)
def test_other_endings_take_the_generic_path(tail: bytes) -> None:
    """A short, long or missing signature or trailing bytes: the generic answer, warm or not."""
    key = KEYS[1]
    good = cose.sign1(payload=b"claims", key=key, kid=_kid(key))
    cose.decode_sign1(good)  # the protected bytes are now known
    data = good[:-66] + tail
    assert _same(_warm(data), _generic(data))


@settings(max_examples=400, deadline=None, derandomize=True)
@given(
    data=st.data(),
    key=st.sampled_from(KEYS),
    payload=st.binary(max_size=300),
)
def test_mutated_messages_decode_alike(data, key, payload) -> None:
    """Any byte replaced, inserted or deleted in a signed message: the common path and the
    generic decoder agree (the same Sign1 or the same rejection)."""
    good = cose.sign1(payload=payload, key=key, kid=_kid(key))
    cose.decode_sign1(good)
    i = data.draw(st.integers(0, len(good) - 1))
    op = data.draw(st.sampled_from(["replace", "insert", "delete"]))
    b = bytes([data.draw(st.integers(0, 255))])
    bad = {
        "replace": good[:i] + b + good[i + 1 :],
        "insert": good[:i] + b + good[i:],
        "delete": good[:i] + good[i + 1 :],
    }[op]
    assert _same(_warm(bad), _generic(bad))


def _message(protected_raw: bytes, payload_head: bytes, payload: bytes) -> bytes:
    """A tagged COSE_Sign1 written by hand, with the payload's head as given."""
    return (
        b"\xd2\x84"
        + bytes((0x40 | len(protected_raw),))
        + protected_raw
        + b"\xa0"
        + payload_head
        + payload
        + b"\x58\x40"
        + b"s" * 64
    )


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize(
    ("size", "head"),
    [
        (24, b"\x58\x18"),
        (255, b"\x58\xff"),
        (256, b"\x59\x01\x00"),
        (65535, b"\x59\xff\xff"),
        (5, b"\x58\x05"),  # longer heads than needed: valid CBOR, not the shortest form
        (30, b"\x59\x00\x1e"),
        (0, b"\x59\x00\x00"),
    ],
)
def test_the_common_shape_gives_the_sig_structure(key, size, head) -> None:
    """common_shape's Sig_structure is sig_structure(protected, payload) for every payload
    head it reads, the shortest form (reused as received) or a longer one (re-encoded)."""
    protected_raw = cbor2.dumps({1: cose.alg_for_key(key), 4: _kid(key)}, canonical=True)
    cose.decode_sign1(cose.sign1(payload=b"x" * 30, key=key, kid=_kid(key)))  # warm the cache
    payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    parts = cose.common_shape(_message(protected_raw, head, payload))
    assert parts is not None
    assert parts[3] == payload
    assert parts[5] == cose.sig_structure(protected_raw, payload)
