"""Identity sealing (DESIGN §4): per-epoch X25519/HKDF key, AES-256-GCM per record, hub opener."""

from __future__ import annotations

import hashlib
import struct

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from suishen.protocol.errors import ProtocolError
from suishen.protocol.sealing import (
    HKDF_INFO,
    SEAL_VERSION,
    Epoch,
    EpochSealer,
    HubOpener,
    OpenError,
    SealingError,
    decode_identity,
    encode_identity,
    epoch_id_of,
    parse_sealed,
    raw_public,
    seal_aad,
)

IDENTITY = {
    "idt": "RIC",
    "idn": "11010519491231002X",
    "nm": "张三明",
    "dob": "1949-12-31",
    "nat": "CHN",
}
GW = "gw-01"


@pytest.fixture
def hub() -> X25519PrivateKey:
    return X25519PrivateKey.generate()


@pytest.fixture
def sealer(hub: X25519PrivateKey) -> EpochSealer:
    return EpochSealer(hub.public_key(), epoch_s=3600)


def _open(hub: X25519PrivateKey, sealer: EpochSealer, sealed: bytes, gw: str, seq: int) -> bytes:
    epoch = sealer.current
    assert epoch is not None
    return HubOpener(hub).open(
        sealed, ephemeral_public=epoch.ephemeral_public, gateway_id=gw, seq=seq
    )


def test_identity_round_trip(hub: X25519PrivateKey, sealer: EpochSealer) -> None:
    """An identity sealed by the gateway opens at the hub for the same gateway and seq."""
    sealed = sealer.seal_identity(IDENTITY, gateway_id=GW, seq=7, now=0.0)
    epoch = sealer.current
    assert epoch is not None
    opened = HubOpener(hub).open_identity(
        sealed, ephemeral_public=epoch.ephemeral_public, gateway_id=GW, seq=7
    )
    assert opened == IDENTITY


def test_clear_identity_is_not_in_the_sealed_bytes(sealer: EpochSealer) -> None:
    """Neither the name nor the number appear in the sealed bytes."""
    sealed = sealer.seal_identity(IDENTITY, gateway_id=GW, seq=1, now=0.0)
    assert "张三明".encode() not in sealed
    assert b"11010519491231002X" not in sealed


def test_wire_format(sealer: EpochSealer) -> None:
    """Version byte, 8-byte epoch id = SHA-256(ephemeral public)[:8], 12-byte counter nonce."""
    first = sealer.seal(b"abc", gateway_id=GW, seq=1, now=0.0)
    second = sealer.seal(b"abc", gateway_id=GW, seq=2, now=1.0)
    epoch = sealer.current
    assert epoch is not None
    version, epoch_id, nonce, body = parse_sealed(first)
    assert version == SEAL_VERSION == first[0]
    assert epoch_id == hashlib.sha256(epoch.ephemeral_public).digest()[:8] == epoch.epoch_id
    assert nonce == bytes(12)
    assert parse_sealed(second)[2] == bytes(11) + b"\x01"
    assert len(body) == 3 + 16
    assert len(first) == 1 + 8 + 12 + 3 + 16


def test_aad_encoding_is_exact() -> None:
    """AAD = version | epoch id | u16 length | gateway id UTF-8 | u64 seq, all big-endian."""
    eid = bytes(range(8))
    assert seal_aad(eid, "gw", 258) == b"\x01" + eid + b"\x00\x02gw" + struct.pack(">Q", 258)
    with pytest.raises(SealingError):
        seal_aad(eid, "", 1)
    with pytest.raises(SealingError):
        seal_aad(eid, "gw", -1)
    with pytest.raises(SealingError):
        seal_aad(eid, "gw", 2**64)


def test_matches_an_independent_derivation(hub: X25519PrivateKey) -> None:
    """The documented construction, rebuilt from cryptography primitives, opens a record."""
    ephemeral = X25519PrivateKey.generate()
    e_pub = raw_public(ephemeral.public_key())
    sealer = EpochSealer(hub.public_key(), key_factory=lambda: ephemeral)
    sealed = sealer.seal(b"payload", gateway_id=GW, seq=42, now=0.0)
    shared = hub.exchange(X25519PublicKey.from_public_bytes(e_pub))
    key = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=e_pub + raw_public(hub.public_key()),
        info=HKDF_INFO,
    ).derive(shared)
    eid = hashlib.sha256(e_pub).digest()[:8]
    aad = b"\x01" + eid + struct.pack(">H", len(GW)) + GW.encode() + struct.pack(">Q", 42)
    assert AESGCM(key).decrypt(sealed[9:21], sealed[21:], aad) == b"payload"


@pytest.mark.parametrize(("gw", "seq"), [(GW, 8), ("gw-02", 7), ("gw-0", 7), (GW, 2**40 + 7)])
def test_wrong_gateway_or_seq_fails(
    hub: X25519PrivateKey, sealer: EpochSealer, gw: str, seq: int
) -> None:
    """A record opens only for the gateway id and seq it was sealed for."""
    sealed = sealer.seal_identity(IDENTITY, gateway_id=GW, seq=7, now=0.0)
    with pytest.raises(OpenError):
        _open(hub, sealer, sealed, gw, seq)


def test_every_tampered_byte_fails(hub: X25519PrivateKey, sealer: EpochSealer) -> None:
    """Flipping any bit of header, nonce, ciphertext or tag makes the record not open."""
    sealed = sealer.seal(b"short identity", gateway_id=GW, seq=3, now=0.0)
    assert _open(hub, sealer, sealed, GW, 3) == b"short identity"
    for i in range(len(sealed)):
        tampered = bytearray(sealed)
        tampered[i] ^= 0x01
        with pytest.raises(OpenError):
            _open(hub, sealer, bytes(tampered), GW, 3)
    for cut in (0, 1, 20, len(sealed) - 1):
        with pytest.raises(OpenError):
            _open(hub, sealer, sealed[:cut], GW, 3)


def test_rotation_after_the_epoch_gives_a_new_epoch(hub: X25519PrivateKey) -> None:
    """After epoch_s (or a clock step back) the next seal starts a new epoch with a new id;
    records of both epochs open with their own ephemeral key only."""
    sealer = EpochSealer(hub.public_key(), epoch_s=10)
    assert sealer.current is None
    a = sealer.seal(b"a", gateway_id=GW, seq=1, now=100.0)
    epoch_a = sealer.current
    sealer.seal(b"b", gateway_id=GW, seq=2, now=109.9)
    assert sealer.current == epoch_a
    b = sealer.seal(b"c", gateway_id=GW, seq=3, now=110.0)
    epoch_b = sealer.current
    assert epoch_a is not None and epoch_b is not None
    assert epoch_b.epoch_id != epoch_a.epoch_id
    assert parse_sealed(b)[2] == bytes(12)  # the counter restarts under the new key
    opener = HubOpener(hub)
    assert opener.open(a, ephemeral_public=epoch_a.ephemeral_public, gateway_id=GW, seq=1) == b"a"
    assert opener.open(b, ephemeral_public=epoch_b.ephemeral_public, gateway_id=GW, seq=3) == b"c"
    with pytest.raises(OpenError):
        opener.open(a, ephemeral_public=epoch_b.ephemeral_public, gateway_id=GW, seq=1)
    sealer.seal(b"d", gateway_id=GW, seq=4, now=50.0)  # clock went back: rotate
    assert sealer.current is not None
    assert sealer.current.epoch_id != epoch_b.epoch_id


def test_max_records_forces_rotation(hub: X25519PrivateKey) -> None:
    """A nonce counter never wraps: after max_records seals the sealer rotates."""
    sealer = EpochSealer(hub.public_key(), max_records=2)
    sealer.seal(b"1", gateway_id=GW, seq=1, now=0.0)
    first = sealer.current
    sealer.seal(b"2", gateway_id=GW, seq=2, now=0.0)
    assert sealer.current == first
    sealer.seal(b"3", gateway_id=GW, seq=3, now=0.0)
    assert sealer.current != first


def test_erase_drops_the_epoch(sealer: EpochSealer) -> None:
    """erase() forgets the epoch; the next seal starts a new one."""
    sealer.seal(b"x", gateway_id=GW, seq=1, now=0.0)
    old = sealer.current
    sealer.erase()
    assert sealer.current is None
    assert sealer.needs_rotation(0.0)
    sealer.seal(b"y", gateway_id=GW, seq=2, now=0.0)
    assert sealer.current is not None
    assert old is not None
    assert sealer.current.epoch_id != old.epoch_id


def test_a_sealer_cannot_open(hub: X25519PrivateKey, sealer: EpochSealer) -> None:
    """Everything a gateway keeps (hub public key, ephemeral public key, the sealed bytes) is
    not enough: the sealer has no open operation, and any key but the hub's fails."""
    sealed = sealer.seal_identity(IDENTITY, gateway_id=GW, seq=1, now=0.0)
    epoch = sealer.current
    assert epoch is not None
    assert not hasattr(sealer, "open")
    with pytest.raises(OpenError):
        HubOpener(X25519PrivateKey.generate()).open(
            sealed, ephemeral_public=epoch.ephemeral_public, gateway_id=GW, seq=1
        )


def test_wrong_or_bad_ephemeral_key_fails(hub: X25519PrivateKey, sealer: EpochSealer) -> None:
    """Another epoch's key, a malformed key, or a low-order point never opens a record."""
    sealed = sealer.seal(b"x", gateway_id=GW, seq=1, now=0.0)
    other = raw_public(X25519PrivateKey.generate().public_key())
    opener = HubOpener(hub)
    with pytest.raises(OpenError):
        opener.open(sealed, ephemeral_public=other, gateway_id=GW, seq=1)
    with pytest.raises(SealingError):
        opener.open(sealed, ephemeral_public=b"short", gateway_id=GW, seq=1)
    with pytest.raises(SealingError):
        opener.open(sealed, ephemeral_public=bytes(32), gateway_id=GW, seq=1)


def test_unsupported_version_fails(hub: X25519PrivateKey, sealer: EpochSealer) -> None:
    """A record with another version byte is refused before any decryption."""
    sealed = sealer.seal(b"x", gateway_id=GW, seq=1, now=0.0)
    with pytest.raises(OpenError, match="version"):
        _open(hub, sealer, b"\x02" + sealed[1:], GW, 1)


def test_bad_arguments_are_refused(hub: X25519PrivateKey) -> None:
    """Sealing refuses unusable keys and settings with a SealingError (a ProtocolError)."""
    assert issubclass(SealingError, ProtocolError)
    with pytest.raises(SealingError):
        EpochSealer(hub)  # type: ignore[arg-type]
    with pytest.raises(SealingError):
        EpochSealer(hub.public_key(), epoch_s=0)
    with pytest.raises(SealingError):
        EpochSealer(hub.public_key(), max_records=0)
    with pytest.raises(SealingError):
        HubOpener(hub.public_key())  # type: ignore[arg-type]
    low_order = EpochSealer(X25519PublicKey.from_public_bytes(bytes(32)))
    with pytest.raises(SealingError):
        low_order.seal(b"x", gateway_id=GW, seq=1, now=0.0)
    with pytest.raises(SealingError):
        Epoch(epoch_id=bytes(8), ephemeral_public=bytes(32), started_at=0.0)
    with pytest.raises(SealingError):
        epoch_id_of(b"\x00" * 31)


def test_identity_encoding_is_canonical_cbor() -> None:
    """Only idt, idn, nm, dob, nat are kept, in canonical CBOR; absent ones are omitted."""
    shuffled = dict(reversed(list(IDENTITY.items())))
    assert encode_identity(IDENTITY) == encode_identity(shuffled)
    assert decode_identity(encode_identity({**IDENTITY, "st": "G"})) == IDENTITY
    assert decode_identity(encode_identity({"nm": "ANNA", "dob": "1990-01-01"})) == {
        "nm": "ANNA",
        "dob": "1990-01-01",
    }
    with pytest.raises(SealingError):
        encode_identity({"nm": 5})  # type: ignore[dict-item]
    for bad in (b"\xff\xff", b"\x01", bytes.fromhex("a1617801")):
        with pytest.raises(OpenError):
            decode_identity(bad)


def test_identity_with_a_lone_surrogate_is_a_sealing_error() -> None:
    """Text that UTF-8 cannot encode is a typed SealingError (the journal turns it into a
    JournalRecordError), not a UnicodeEncodeError escaping from the encoder."""
    with pytest.raises(SealingError):
        encode_identity({"nm": "A\ud800"})
