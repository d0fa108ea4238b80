"""Property tests of identity sealing: any record round-trips for its own (gateway, seq) and
nothing else; any single-byte change is detected; identities survive encoding."""

from __future__ import annotations

import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from suishen.protocol.sealing import (
    IDENTITY_FIELDS,
    EpochSealer,
    HubOpener,
    OpenError,
    decode_identity,
    encode_identity,
)

HUB = X25519PrivateKey.generate()
SEALER = EpochSealer(HUB.public_key())
OPENER = HubOpener(HUB)

text = st.characters(exclude_categories=("Cs",))  # no lone surrogates: not UTF-8 encodable
gateway_ids = st.text(alphabet=text, min_size=1, max_size=40)
seqs = st.integers(min_value=0, max_value=2**64 - 1)


def _seal(plaintext: bytes, gw: str, seq: int) -> tuple[bytes, bytes]:
    sealed = SEALER.seal(plaintext, gateway_id=gw, seq=seq, now=0.0)
    epoch = SEALER.current
    assert epoch is not None
    return sealed, epoch.ephemeral_public


@settings(max_examples=200)
@given(plaintext=st.binary(max_size=300), gw=gateway_ids, seq=seqs)
def test_round_trip(plaintext: bytes, gw: str, seq: int) -> None:
    """Every plaintext opens again, for the gateway and seq it was sealed for."""
    sealed, e_pub = _seal(plaintext, gw, seq)
    assert OPENER.open(sealed, ephemeral_public=e_pub, gateway_id=gw, seq=seq) == plaintext


@settings(max_examples=200)
@given(gw=gateway_ids, seq=seqs, other_gw=gateway_ids, other_seq=seqs)
def test_other_aad_never_opens(gw: str, seq: int, other_gw: str, other_seq: int) -> None:
    """A record never opens for another (gateway, seq)."""
    sealed, e_pub = _seal(b"identity", gw, seq)
    if (other_gw, other_seq) == (gw, seq):
        return
    with pytest.raises(OpenError):
        OPENER.open(sealed, ephemeral_public=e_pub, gateway_id=other_gw, seq=other_seq)


@settings(max_examples=200)
@given(plaintext=st.binary(max_size=64), data=st.data())
def test_any_byte_change_is_detected(plaintext: bytes, data: st.DataObject) -> None:
    """Changing any one byte of a sealed record to any other value makes it not open."""
    sealed, e_pub = _seal(plaintext, "gw", 1)
    index = data.draw(st.integers(min_value=0, max_value=len(sealed) - 1))
    delta = data.draw(st.integers(min_value=1, max_value=255))
    tampered = bytearray(sealed)
    tampered[index] ^= delta
    with pytest.raises(OpenError):
        OPENER.open(bytes(tampered), ephemeral_public=e_pub, gateway_id="gw", seq=1)


@given(
    st.dictionaries(
        st.sampled_from(IDENTITY_FIELDS),
        st.text(alphabet=text, max_size=30),
    )
)
def test_identity_encoding_round_trips(identity: dict[str, str]) -> None:
    """Any map of identity fields to text survives encode/decode unchanged."""
    assert decode_identity(encode_identity(identity)) == identity


@given(
    st.dictionaries(
        st.sampled_from((*IDENTITY_FIELDS, "st", "v")),
        st.text(alphabet=text, max_size=300),
    )
)
def test_identity_encoding_is_cbor2_canonical_bytes(identity: dict[str, str]) -> None:
    """The hand-made encoder gives exactly cbor2's canonical bytes for the identity fields
    (other keys dropped), for texts of every head length (0..23, one and two length bytes)."""
    picked = {k: v for k, v in identity.items() if k in IDENTITY_FIELDS}
    assert encode_identity(identity) == cbor2.dumps(picked, canonical=True)
