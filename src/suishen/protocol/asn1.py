"""A lenient reader for the few X.509 fields a trust anchor needs (key and validity).

cryptography parses certificates as strict DER and refuses, rightly, encodings such as an
explicitly encoded DEFAULT value. Some published DCC signer certificates have those. This walk
reads definite-length TLVs only (BER indefinite lengths are refused) and takes the
SubjectPublicKeyInfo and the validity from tbsCertificate; it verifies nothing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

_SEQUENCE = 0x30
_UTC_TIME = 0x17
_GENERALIZED_TIME = 0x18
_VERSION_TAG = 0xA0


@dataclass(frozen=True, slots=True, kw_only=True)
class CertificateFields:
    spki: bytes  # the DER SubjectPublicKeyInfo, header included
    not_before: float
    not_after: float


def _tlv(data: bytes, offset: int) -> tuple[int, int, int]:
    """(tag, start of value, end of value) of the TLV at offset; ValueError if malformed."""
    if offset + 2 > len(data):
        raise ValueError("truncated TLV")
    tag, first = data[offset], data[offset + 1]
    offset += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or offset + count > len(data):
            raise ValueError("unsupported or truncated length")
        length = int.from_bytes(data[offset : offset + count], "big")
        offset += count
    end = offset + length
    if end > len(data):
        raise ValueError("TLV runs past its container")
    return tag, offset, end


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """(tag, header start, value start, value end) of each TLV in data[start:end]."""
    out = []
    while start < end:
        tag, value_start, value_end = _tlv(data, start)
        out.append((tag, start, value_start, value_end))
        start = value_end
    return out


def _time(tag: int, raw: bytes) -> float:
    text = raw.decode("ascii")
    if tag == _UTC_TIME:
        moment = dt.datetime.strptime(text, "%y%m%d%H%M%SZ").replace(tzinfo=dt.UTC)
    elif tag == _GENERALIZED_TIME:
        moment = dt.datetime.strptime(text, "%Y%m%d%H%M%SZ").replace(tzinfo=dt.UTC)
    else:
        raise ValueError("validity is not a time")
    return moment.timestamp()


def read_certificate(data: bytes) -> CertificateFields:
    """The key and validity of an X.509 certificate; ValueError if the structure is not one."""
    tag, start, end = _tlv(data, 0)
    if tag != _SEQUENCE:
        raise ValueError("certificate is not a SEQUENCE")
    parts = _children(data, start, end)
    if not parts or parts[0][0] != _SEQUENCE:
        raise ValueError("no tbsCertificate")
    fields = _children(data, parts[0][2], parts[0][3])
    if fields and fields[0][0] == _VERSION_TAG:
        fields = fields[1:]
    # serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo, ...
    if len(fields) < 6:
        raise ValueError("tbsCertificate is too short")
    validity, spki = fields[3], fields[5]
    if validity[0] != _SEQUENCE or spki[0] != _SEQUENCE:
        raise ValueError("validity or subjectPublicKeyInfo is not a SEQUENCE")
    times = _children(data, validity[2], validity[3])
    if len(times) != 2:
        raise ValueError("validity needs two times")
    (tb, _, vb, eb), (ta, _, va, ea) = times
    return CertificateFields(
        spki=data[spki[1] : spki[3]],
        not_before=_time(tb, data[vb:eb]),
        not_after=_time(ta, data[va:ea]),
    )
