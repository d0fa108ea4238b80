"""Trust lists: which keys may sign which codes, for which issuer, and when.

The trust file (and the body of the signed trust bundle) is JSON::

    {"version": 1, "keys": [{"kid": base64 (optional: computed if absent), "issuer": "CN-SH",
      "formats": ["SSC1"], "spki" or "certificate": base64 DER,
      "not_before", "not_after": ISO 8601 (optional)}]}

kid = first 8 bytes of SHA-256 of the DER of the anchor as distributed (certificate or SPKI).
A certificate's own validity applies unless not_before/not_after are given. A DCC signer
certificate carrying DCC extended-key-usage codes may only sign those certificate types.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key

from suishen.protocol.asn1 import read_certificate
from suishen.protocol.cose import PublicKey, SignatureCheck, kid_of, make_verifier, spki_der
from suishen.protocol.errors import TrustListError

TRUST_FILE_VERSION: Final = 1
KNOWN_FORMATS: Final = frozenset({"SSC1", "HC1"})

# DCC key usage: extended-key-usage OIDs -> the certificate types (hcert "t", "v", "r").
# The second arc form (with ".0.") was used by some issuers and is accepted by EU verifiers.
DCC_KEY_USAGE: Final = {
    "1.3.6.1.4.1.1847.2021.1.1": "t",
    "1.3.6.1.4.1.1847.2021.1.2": "v",
    "1.3.6.1.4.1.1847.2021.1.3": "r",
    "1.3.6.1.4.1.0.1847.2021.1.1": "t",
    "1.3.6.1.4.1.0.1847.2021.1.2": "v",
    "1.3.6.1.4.1.0.1847.2021.1.3": "r",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class TrustedKey:
    """One key the gateway trusts, and what for."""

    kid: bytes
    issuer: str
    formats: frozenset[str]
    public_key: PublicKey = field(repr=False, compare=False)
    anchor_der: bytes = field(repr=False)
    anchor_kind: str  # "certificate" | "spki"
    not_before: float | None = None  # POSIX seconds
    not_after: float | None = None
    key_usage: frozenset[str] | None = None  # DCC types it may sign; None = any
    # The signature check bound to public_key (its type and curve examined once).
    verifier: SignatureCheck = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "verifier", make_verifier(self.public_key))
        if len(self.kid) == 0 or len(self.kid) > 64:
            raise TrustListError("kid must be 1..64 bytes")
        if not self.issuer:
            raise TrustListError("issuer must not be empty")
        if not self.formats or not self.formats <= KNOWN_FORMATS:
            raise TrustListError(f"formats must be a non-empty subset of {sorted(KNOWN_FORMATS)}")

    def valid_at(self, now: float) -> bool:
        if self.not_before is not None and now < self.not_before:
            return False
        return not (self.not_after is not None and now > self.not_after)

    def to_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "kid": base64.b64encode(self.kid).decode(),
            "issuer": self.issuer,
            "formats": sorted(self.formats),
            self.anchor_kind: base64.b64encode(self.anchor_der).decode(),
        }
        if self.not_before is not None:
            entry["not_before"] = _iso(self.not_before)
        if self.not_after is not None:
            entry["not_after"] = _iso(self.not_after)
        return entry


class TrustList:
    """Trusted keys by kid; a kid may (rarely) map to more than one key."""

    __slots__ = ("_by_kid", "sole_keys", "version")

    def __init__(self, keys: Iterable[TrustedKey] = (), *, version: int = 0) -> None:
        self.version = version
        by_kid: dict[bytes, tuple[TrustedKey, ...]] = {}
        for key in keys:
            by_kid[key.kid] = (*by_kid.get(key.kid, ()), key)
        self._by_kid = by_kid
        # kid -> key, for the kids held by exactly one key (all but a collision): verify()'s
        # fused path looks a code's key up here in one step.
        self.sole_keys: dict[bytes, TrustedKey] = {
            kid: found[0] for kid, found in by_kid.items() if len(found) == 1
        }

    def candidates(self, kid: bytes) -> tuple[TrustedKey, ...]:
        return self._by_kid.get(kid, ())

    def __len__(self) -> int:
        return sum(len(keys) for keys in self._by_kid.values())

    def keys(self) -> list[TrustedKey]:
        return [key for keys in self._by_kid.values() for key in keys]

    def to_json(self) -> dict[str, Any]:
        return {"version": TRUST_FILE_VERSION, "keys": [key.to_json() for key in self.keys()]}

    @classmethod
    def from_json(cls, document: Any, *, version: int = 0) -> TrustList:
        """Build from a parsed trust file; raise TrustListError naming the bad entry."""
        if not isinstance(document, Mapping):
            raise TrustListError("trust file must be a JSON object")
        if document.get("version") != TRUST_FILE_VERSION:
            raise TrustListError(f"trust file version must be {TRUST_FILE_VERSION}")
        entries = document.get("keys")
        if not isinstance(entries, list):
            raise TrustListError("trust file needs a 'keys' list")
        keys = []
        for index, entry in enumerate(entries):
            try:
                keys.append(trusted_key_from_json(entry))
            except TrustListError as exc:
                raise TrustListError(f"keys[{index}]: {exc}") from exc
        return cls(keys, version=version)


def trusted_key_from_json(entry: Any) -> TrustedKey:
    if not isinstance(entry, Mapping):
        raise TrustListError("entry must be an object")
    issuer = entry.get("issuer")
    if not isinstance(issuer, str):
        raise TrustListError("'issuer' must be a string")
    formats = entry.get("formats", ["SSC1"])
    if not isinstance(formats, list) or not all(isinstance(f, str) for f in formats):
        raise TrustListError("'formats' must be a list of strings")
    not_before = _parse_time(entry.get("not_before"), "not_before")
    not_after = _parse_time(entry.get("not_after"), "not_after")
    if "certificate" in entry:
        key = trusted_key_from_certificate(
            _b64(entry["certificate"], "certificate"), issuer=issuer, formats=formats
        )
        if not_before is not None or not_after is not None:
            key = _replace_validity(key, not_before, not_after)
    elif "spki" in entry:
        der = _b64(entry["spki"], "spki")
        try:
            public_key = load_der_public_key(der)
        except ValueError as exc:
            raise TrustListError("'spki' is not a DER SubjectPublicKeyInfo") from exc
        key = TrustedKey(
            kid=kid_of(der),
            issuer=issuer,
            formats=frozenset(formats),
            public_key=_usable(public_key),
            anchor_der=der,
            anchor_kind="spki",
            not_before=not_before,
            not_after=not_after,
        )
    else:
        raise TrustListError("entry needs 'spki' or 'certificate'")
    if "kid" in entry:
        kid = _b64(entry["kid"], "kid")
        if kid != key.kid:
            raise TrustListError("'kid' does not match SHA-256 of the anchor's DER")
    return key


def trusted_key_from_certificate(
    der: bytes, *, issuer: str, formats: Iterable[str] = ("HC1",)
) -> TrustedKey:
    """A trusted key from an X.509 signer certificate (DER), with its validity and key usage.

    Some issuers' certificates are not strict DER (e.g. an explicitly encoded default), which
    cryptography rightly refuses to parse; for those the key and validity are read with a
    lenient TLV walk (asn1.py) and no key-usage restriction is derived.
    """
    from cryptography import x509  # noqa: PLC0415 - only certificates need it (CLI start-up)

    try:
        cert = x509.load_der_x509_certificate(der)
        public_key: object = cert.public_key()
    except ValueError:
        try:
            fields = read_certificate(der)
            lenient_key = load_der_public_key(fields.spki)
        except ValueError as exc:
            raise TrustListError("'certificate' is not an X.509 certificate") from exc
        return TrustedKey(
            kid=kid_of(der),
            issuer=issuer,
            formats=frozenset(formats),
            public_key=_usable(lenient_key),
            anchor_der=der,
            anchor_kind="certificate",
            not_before=fields.not_before,
            not_after=fields.not_after,
        )
    usage: frozenset[str] | None = None
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        types = {
            DCC_KEY_USAGE[oid.dotted_string] for oid in eku if oid.dotted_string in DCC_KEY_USAGE
        }
        usage = frozenset(types) or None
    except x509.ExtensionNotFound:
        usage = None
    except ValueError:  # extensions not strict DER (see above): no usage restriction known
        usage = None
    return TrustedKey(
        kid=kid_of(der),
        issuer=issuer,
        formats=frozenset(formats),
        public_key=_usable(public_key),
        anchor_der=der,
        anchor_kind="certificate",
        not_before=cert.not_valid_before_utc.timestamp(),
        not_after=cert.not_valid_after_utc.timestamp(),
        key_usage=usage,
    )


def trusted_key_from_public_key(
    public_key: PublicKey,
    *,
    issuer: str,
    formats: Iterable[str] = ("SSC1",),
    not_before: float | None = None,
    not_after: float | None = None,
) -> TrustedKey:
    der = spki_der(public_key)
    return TrustedKey(
        kid=kid_of(der),
        issuer=issuer,
        formats=frozenset(formats),
        public_key=public_key,
        anchor_der=der,
        anchor_kind="spki",
        not_before=not_before,
        not_after=not_after,
    )


def _replace_validity(key: TrustedKey, nb: float | None, na: float | None) -> TrustedKey:
    return TrustedKey(
        kid=key.kid,
        issuer=key.issuer,
        formats=key.formats,
        public_key=key.public_key,
        anchor_der=key.anchor_der,
        anchor_kind=key.anchor_kind,
        not_before=key.not_before if nb is None else nb,
        not_after=key.not_after if na is None else na,
        key_usage=key.key_usage,
    )


def _usable(public_key: object) -> PublicKey:
    if isinstance(
        public_key, ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey
    ):
        return public_key
    raise TrustListError(f"key type {type(public_key).__name__} is not EC, Ed25519 or RSA")


def _b64(value: Any, name: str) -> bytes:
    if not isinstance(value, str):
        raise TrustListError(f"'{name}' must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise TrustListError(f"'{name}' is not valid base64") from exc


def parse_iso8601(text: str) -> float:
    """ISO 8601 to POSIX seconds; a time without a zone is UTC. Raises ValueError."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    if len(value) > 5 and value[-5] in "+-" and value[-3] != ":" and "T" in value:
        value = value[:-2] + ":" + value[-2:]  # +0000 -> +00:00
    head, dot, frac = value.partition(".")
    if dot:  # more than 6 fractional digits (.NET writes 7) -> microseconds
        digits = "".join(ch for ch in frac if ch.isdigit())
        zone = frac[len(digits) :]
        value = f"{head}.{digits[:6]}{zone}"
    moment = dt.datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()


def _parse_time(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TrustListError(f"'{name}' must be an ISO 8601 string")
    try:
        return parse_iso8601(value)
    except ValueError as exc:
        raise TrustListError(f"'{name}' is not ISO 8601: {value!r}") from exc


def _iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat().replace("+00:00", "Z")
