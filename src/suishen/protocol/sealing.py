"""Sealing identities to the hub (DESIGN §4): per-epoch X25519 + HKDF, AES-256-GCM per record.

Sans-I/O: bytes and keys in, bytes out; no clock reads (rotation takes ``now`` as a parameter),
no randomness except cryptography's own X25519 key generation (or a key passed in).

Gateway side, :class:`EpochSealer`
    Once per epoch (``epoch_s``, default 3600 s) it generates an ephemeral X25519 key ``e``,
    computes ``shared = X25519(e, hub_public)`` and derives the 32-byte epoch key::

        epoch_key = HKDF-SHA256(ikm=shared, salt=E || H, info=b"suishen-gate/seal/v1/epoch-key",
                                length=32)

    where ``E`` and ``H`` are the raw 32-byte ephemeral and hub public keys (binding the key to
    both parties, as in ECIES/HPKE).  The ephemeral *private* key is dropped right after the
    agreement; only its public key is kept, and published once per epoch (the journal's epochs
    table) so the hub can derive the same key.  ``epoch_id = SHA-256(E)[:8]``.

    Each record is AES-256-GCM under the epoch key.  Wire format of a sealed record::

        version (1 byte, 0x01) || epoch_id (8) || nonce (12) || ciphertext || tag (16)

    AAD (exact bytes; the header is bound too, so a record cannot be moved to another epoch)::

        version (1) || epoch_id (8) || len(gateway_id UTF-8) (2, big-endian) || gateway_id UTF-8
                    || seq (8, unsigned big-endian)

    Nonces are a counter, not random: ``nonce = 0x00000000 || counter (8 bytes, big-endian)``
    starting at 0 for every epoch key.  The key exists only in memory, inside the same object as
    its counter, and a new key is drawn at every rotation and at every process start, so a
    (key, nonce) pair can never repeat: no persisted counter can be rolled back, and there is no
    birthday bound to argue about.  Random 96-bit nonces would also be safe at our volume (about
    10^6 records per epoch), but would need an RNG in a sans-I/O module.  The sealer also rotates
    early after ``max_records`` records (default 2^32, far below GCM's per-key limits).

    Erasure: at rotation the epoch key and its AESGCM object are dropped.  Python cannot
    guarantee zeroisation: ``bytes`` are immutable, copies may linger in freed heap memory until
    reused, and OpenSSL holds its own copy in the cipher context until it is freed.  What we do
    guarantee is that no reference to an old epoch key survives rotation, and that the ephemeral
    private key never outlives the derivation; a process memory dump taken *during* an epoch can
    still reveal that epoch's key.

Hub side, :class:`HubOpener`
    Given the hub's X25519 private key and an epoch's ephemeral public key, re-derives the epoch
    key (cached per epoch) and opens a record for a stated ``gateway_id`` and ``seq``; a wrong
    gateway, seq, epoch or any tampered byte fails with :class:`OpenError`.

Identity plaintext: a canonical CBOR map (RFC 8949 §4.2.1 deterministic encoding) with text
keys ``idt idn nm dob nat`` and text values; keys that are absent are omitted (an HC1 code has
no document number), other keys in the input are ignored.

Exceptions (all :class:`suishen.protocol.errors.ProtocolError`)::

    SealingError        a sealing contract broken (bad key, bad argument, erased sealer)
     +-- OpenError      a sealed record that does not open (malformed, wrong epoch/AAD, tampered)
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

import cbor2
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from suishen.protocol.errors import ProtocolError

__all__ = [
    "DEFAULT_EPOCH_S",
    "EPOCH_ID_LEN",
    "HKDF_INFO",
    "IDENTITY_FIELDS",
    "NONCE_LEN",
    "SEAL_VERSION",
    "Epoch",
    "EpochSealer",
    "HubOpener",
    "OpenError",
    "SealingError",
    "decode_identity",
    "derive_epoch_key",
    "encode_identity",
    "epoch_id_of",
    "parse_sealed",
    "raw_public",
    "seal_aad",
]

SEAL_VERSION: Final = 1
EPOCH_ID_LEN: Final = 8
NONCE_LEN: Final = 12
TAG_LEN: Final = 16
KEY_LEN: Final = 32
HEADER_LEN: Final = 1 + EPOCH_ID_LEN + NONCE_LEN
HKDF_INFO: Final = b"suishen-gate/seal/v1/epoch-key"
DEFAULT_EPOCH_S: Final = 3600.0
MAX_RECORDS_PER_EPOCH: Final = 2**32
MAX_SEQ: Final = 2**64 - 1
MAX_GATEWAY_ID_BYTES: Final = 0xFFFF
IDENTITY_FIELDS: Final = ("idt", "idn", "nm", "dob", "nat")
_NONCE_PREFIX: Final = b"\x00\x00\x00\x00"


class SealingError(ProtocolError, ValueError):
    """A sealing contract was broken: a bad key or argument, or use of an erased sealer."""


class OpenError(SealingError):
    """A sealed record that does not open: malformed, another epoch or AAD, or tampered."""


def raw_public(key: X25519PublicKey) -> bytes:
    """The 32 raw bytes of an X25519 public key."""
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def epoch_id_of(ephemeral_public: bytes) -> bytes:
    """The epoch id: the first 8 bytes of SHA-256 of the raw ephemeral public key."""
    if len(ephemeral_public) != KEY_LEN:
        raise SealingError("an X25519 public key is 32 bytes")
    return hashlib.sha256(ephemeral_public).digest()[:EPOCH_ID_LEN]


def derive_epoch_key(shared: bytes, ephemeral_public: bytes, hub_public: bytes) -> bytes:
    """HKDF-SHA256(shared, salt = ephemeral_public || hub_public, info = HKDF_INFO), 32 bytes."""
    return HKDF(
        algorithm=hashes.SHA256(),
        length=KEY_LEN,
        salt=ephemeral_public + hub_public,
        info=HKDF_INFO,
    ).derive(shared)


def seal_aad(epoch_id: bytes, gateway_id: str, seq: int) -> bytes:
    """The exact AAD of a sealed record (see the module docstring)."""
    gid = gateway_id.encode("utf-8")
    if not gid or len(gid) > MAX_GATEWAY_ID_BYTES:
        raise SealingError("gateway_id must be 1..65535 UTF-8 bytes")
    if not 0 <= seq <= MAX_SEQ:
        raise SealingError("seq must fit an unsigned 64-bit integer")
    if len(epoch_id) != EPOCH_ID_LEN:
        raise SealingError("epoch_id must be 8 bytes")
    return struct.pack(">B8sH", SEAL_VERSION, epoch_id, len(gid)) + gid + struct.pack(">Q", seq)


def parse_sealed(sealed: bytes) -> tuple[int, bytes, bytes, bytes]:
    """Split a sealed record into (version, epoch_id, nonce, ciphertext-with-tag)."""
    if len(sealed) < HEADER_LEN + TAG_LEN:
        raise OpenError("sealed record too short")
    version = sealed[0]
    if version != SEAL_VERSION:
        raise OpenError(f"unsupported seal version {version}")
    epoch_id = sealed[1 : 1 + EPOCH_ID_LEN]
    nonce = sealed[1 + EPOCH_ID_LEN : HEADER_LEN]
    return version, epoch_id, nonce, sealed[HEADER_LEN:]


# The identity keys in canonical CBOR order (RFC 8949 §4.2.1: by their encoded bytes, so the
# two-letter key first), each with its encoded key in front (a text head 0x60 | length).
_CANONICAL_KEYS: Final = tuple(
    (name, bytes((0x60 | len(name),)) + name.encode("ascii"))
    for name in sorted(IDENTITY_FIELDS, key=lambda k: (len(k), k))
)


_SHORT_HEADS: Final = tuple(bytes((0x60 | n,)) for n in range(24))


def _text_head(n: int) -> bytes:
    """The head of a CBOR text string of n UTF-8 bytes (definite length, shortest form)."""
    if n < 24:
        return _SHORT_HEADS[n]
    if n < 0x100:
        return bytes((0x78, n))
    if n < 0x10000:
        return b"\x79" + n.to_bytes(2, "big")
    if n < 0x100000000:
        return b"\x7a" + n.to_bytes(4, "big")
    return b"\x7b" + n.to_bytes(8, "big")


def encode_identity(identity: Mapping[str, str]) -> bytes:
    """The identity plaintext: canonical CBOR of the fields in IDENTITY_FIELDS that are present.

    Encoded here (a map of at most five text pairs, on every scan's path) rather than by
    cbor2's canonical mode, about five times faster; the bytes are the same (a property test
    holds them equal).  Text that is not UTF-8 encodable (a lone surrogate) is a SealingError.
    """
    parts: list[bytes] = []
    try:
        for name, key in _CANONICAL_KEYS:
            value = identity.get(name)
            if value is None:
                continue
            if not isinstance(value, str):
                raise SealingError(f"identity field {name} must be text")
            data = value.encode("utf-8")
            n = len(data)
            # A short text's head is one byte (every field of a usual identity), inline.
            parts += (key, _SHORT_HEADS[n] if n < 24 else _text_head(n), data)
    except UnicodeEncodeError as exc:
        raise SealingError("identity text is not UTF-8 encodable") from exc
    return bytes((0xA0 | (len(parts) // 3),)) + b"".join(parts)


def decode_identity(plaintext: bytes) -> dict[str, str]:
    """The inverse of encode_identity (raises OpenError on anything else)."""
    try:
        value = cbor2.loads(plaintext)
    except (cbor2.CBORDecodeError, ValueError, TypeError) as exc:
        raise OpenError("sealed identity is not CBOR") from exc
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and k in IDENTITY_FIELDS and isinstance(v, str) for k, v in value.items()
    ):
        raise OpenError("sealed identity is not a map of identity fields to text")
    return {str(k): str(v) for k, v in value.items()}


@dataclass(frozen=True, slots=True, kw_only=True)
class Epoch:
    """What the hub needs to open an epoch's records: its id and ephemeral public key."""

    epoch_id: bytes
    ephemeral_public: bytes
    started_at: float  # the caller's clock, as passed to the sealer

    def __post_init__(self) -> None:
        if epoch_id_of(self.ephemeral_public) != self.epoch_id:
            raise SealingError("epoch_id does not match the ephemeral public key")


@dataclass(slots=True)
class _EpochState:
    epoch: Epoch
    aead: AESGCM | None
    counter: int = 0
    limit: int = field(default=MAX_RECORDS_PER_EPOCH)
    # The AAD up to the seq for the last gateway_id sealed for (a gateway seals for one id).
    aad_gateway: str | None = None
    aad_head: bytes = b""


class EpochSealer:
    """Gateway side: seals records to the hub's X25519 key under a rotating epoch key.

    ``seal(plaintext, gateway_id=, seq=, now=)`` rotates first when the epoch is ``epoch_s``
    old by the caller's clock (or the clock went backwards, or ``max_records`` were sealed),
    so the caller must pass one consistent clock (a monotonic one is best).  ``current`` is
    the epoch the last record was sealed under; the caller publishes every new epoch
    (``epoch_id`` and ``ephemeral_public``) before or with the first record sealed under it.
    """

    __slots__ = ("_epoch_s", "_hub_public", "_key_factory", "_max_records", "_state")

    def __init__(
        self,
        hub_public_key: X25519PublicKey,
        *,
        epoch_s: float = DEFAULT_EPOCH_S,
        max_records: int = MAX_RECORDS_PER_EPOCH,
        key_factory: Callable[[], X25519PrivateKey] = X25519PrivateKey.generate,
    ) -> None:
        if not isinstance(hub_public_key, X25519PublicKey):
            raise SealingError("the hub key must be an X25519 public key")
        if not epoch_s > 0:
            raise SealingError("epoch_s must be positive")
        if not 1 <= max_records <= MAX_RECORDS_PER_EPOCH:
            raise SealingError(f"max_records must be 1..{MAX_RECORDS_PER_EPOCH}")
        self._hub_public = raw_public(hub_public_key)
        self._epoch_s = epoch_s
        self._max_records = max_records
        self._key_factory = key_factory
        self._state: _EpochState | None = None

    @property
    def current(self) -> Epoch | None:
        """The current epoch, or None before the first record and after erase()."""
        return None if self._state is None else self._state.epoch

    def needs_rotation(self, now: float) -> bool:
        """True when the next seal at ``now`` starts a new epoch."""
        state = self._state
        return (
            state is None
            or now - state.epoch.started_at >= self._epoch_s
            or now < state.epoch.started_at
            or state.counter >= state.limit
        )

    def rotate(self, now: float) -> Epoch:
        """Start a new epoch now: a fresh ephemeral key and epoch key; the old key is dropped."""
        self.erase()
        ephemeral = self._key_factory()
        if not isinstance(ephemeral, X25519PrivateKey):
            raise SealingError("key_factory must return an X25519 private key")
        ephemeral_public = raw_public(ephemeral.public_key())
        try:
            shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(self._hub_public))
        except ValueError as exc:  # an all-zero shared secret: a low-order hub key
            raise SealingError("the hub public key is not usable for X25519") from exc
        del ephemeral  # the private half is never needed again
        key = derive_epoch_key(shared, ephemeral_public, self._hub_public)
        epoch = Epoch(
            epoch_id=epoch_id_of(ephemeral_public),
            ephemeral_public=ephemeral_public,
            started_at=now,
        )
        self._state = _EpochState(epoch=epoch, aead=AESGCM(key), limit=self._max_records)
        return epoch

    def erase(self) -> None:
        """Drop the epoch key (see the module docstring for what Python can and cannot do)."""
        state = self._state
        if state is not None:
            state.aead = None
        self._state = None

    def seal(self, plaintext: bytes, *, gateway_id: str, seq: int, now: float) -> bytes:
        """Seal ``plaintext`` for (gateway_id, seq), rotating first if the epoch is over."""
        if self.needs_rotation(now):
            self.rotate(now)
        state = self._state
        if state is None or state.aead is None:  # pragma: no cover - rotate() sets both
            raise SealingError("the sealer has no epoch key")
        epoch_id = state.epoch.epoch_id
        if gateway_id != state.aad_gateway or type(gateway_id) is not str:
            state.aad_head = seal_aad(epoch_id, gateway_id, 0)[:-8]
            state.aad_gateway = gateway_id
        if not 0 <= seq <= MAX_SEQ:
            raise SealingError("seq must fit an unsigned 64-bit integer")
        aad = state.aad_head + seq.to_bytes(8, "big")  # = seal_aad(epoch_id, gateway_id, seq)
        nonce = _NONCE_PREFIX + state.counter.to_bytes(8, "big")
        state.counter += 1
        ciphertext = state.aead.encrypt(nonce, plaintext, aad)
        return bytes((SEAL_VERSION,)) + epoch_id + nonce + ciphertext

    def seal_identity(
        self, identity: Mapping[str, str], *, gateway_id: str, seq: int, now: float
    ) -> bytes:
        """Seal an identity map (see encode_identity) for (gateway_id, seq)."""
        return self.seal(encode_identity(identity), gateway_id=gateway_id, seq=seq, now=now)


class HubOpener:
    """Hub side: opens sealed records with the hub's X25519 private key.

    Epoch keys are derived on first use and cached (``cache_size`` epochs, oldest evicted).
    """

    __slots__ = ("_cache", "_cache_size", "_hub_private", "_hub_public")

    def __init__(self, hub_private_key: X25519PrivateKey, *, cache_size: int = 256) -> None:
        if not isinstance(hub_private_key, X25519PrivateKey):
            raise SealingError("the hub key must be an X25519 private key")
        self._hub_private = hub_private_key
        self._hub_public = raw_public(hub_private_key.public_key())
        self._cache: dict[bytes, AESGCM] = {}
        self._cache_size = max(1, cache_size)

    def _aead(self, ephemeral_public: bytes) -> tuple[bytes, AESGCM]:
        epoch_id = epoch_id_of(ephemeral_public)
        aead = self._cache.get(ephemeral_public)
        if aead is None:
            try:
                peer = X25519PublicKey.from_public_bytes(ephemeral_public)
                shared = self._hub_private.exchange(peer)
            except ValueError as exc:
                raise OpenError("the ephemeral public key is not usable for X25519") from exc
            aead = AESGCM(derive_epoch_key(shared, ephemeral_public, self._hub_public))
            if len(self._cache) >= self._cache_size:
                self._cache.pop(next(iter(self._cache)))
            self._cache[ephemeral_public] = aead
        return epoch_id, aead

    def open(self, sealed: bytes, *, ephemeral_public: bytes, gateway_id: str, seq: int) -> bytes:
        """The plaintext of ``sealed`` for (gateway_id, seq); OpenError if it does not open."""
        _, epoch_id, nonce, ciphertext = parse_sealed(sealed)
        expected_id, aead = self._aead(ephemeral_public)
        if epoch_id != expected_id:
            raise OpenError("the record was sealed under another epoch")
        try:
            aad = seal_aad(epoch_id, gateway_id, seq)
        except SealingError as exc:
            raise OpenError(str(exc)) from exc
        try:
            return aead.decrypt(nonce, ciphertext, aad)
        except InvalidTag as exc:
            raise OpenError("the record does not open for this gateway and seq") from exc

    def open_identity(
        self, sealed: bytes, *, ephemeral_public: bytes, gateway_id: str, seq: int
    ) -> dict[str, str]:
        """Open a sealed identity map."""
        plaintext = self.open(
            sealed, ephemeral_public=ephemeral_public, gateway_id=gateway_id, seq=seq
        )
        return decode_identity(plaintext)
