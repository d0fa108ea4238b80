"""ICAO 9303 MRZs against tests/conformance/data (mrz_vectors.jsonl and
mrz_vectors_checkdigit.json, every record).

Sources judge validity differently, and each record says how (``valid_semantics``):

- ICAO specimens and PassportEye: valid means every check digit holds; that is exactly
  when :func:`parse_mrz` returns an ``Mrz``.
- cheminfo/mrz: valid also requires the issuing state and nationality to be real codes
  (the ICAO specimen state ``UTO`` is fictional).  We do not refuse ``UTO`` (a hotel desk
  must be able to read the specimen), but ``Mrz.codes_known`` reports it, so the
  cheminfo verdict is ``ok and codes_known``; and cheminfo's count of invalid details
  equals our failed checks plus unknown codes.

No record is excepted.
"""

from __future__ import annotations

from typing import Any

import pytest

from suishen.protocol.identity import Mrz, MrzRejection, mrz_check_digit, parse_mrz
from suishen.protocol.identity.mrz import COUNTRY_CODES
from tests.conformance.data import read_json, read_jsonl

RECORDS: list[dict[str, Any]] = read_jsonl("mrz_vectors.jsonl")
CHECK_DIGITS: list[dict[str, Any]] = read_json("mrz_vectors_checkdigit.json")["vectors"]

CHEMINFO = "all fields valid incl. check digits AND issuing state / nationality"
CHECK_DIGITS_ONLY = ("specimen: all check digits correct", "all check digits correct")


def _document(result: Mrz | MrzRejection) -> Mrz:
    if isinstance(result, Mrz):
        return result
    assert result.document is not None, f"structurally refused: {result.reason}"
    return result.document


def _ours(doc: Mrz, name: str) -> str:
    """Our value for one field name used by the vectors."""
    if name.endswith("_cd"):
        check = "personal_number" if name == "personal_number_cd" else name[:-3]
        return doc.check(check).printed
    return {
        "document_code": doc.document_code,
        "issuing_state": doc.issuing_state,
        "document_number": doc.document_number,
        "surname": doc.surname,
        "given_names": doc.given_names,
        "nationality": doc.nationality,
        "birth_date": doc.birth_date_raw,
        "expiry_date": doc.expiry_date_raw,
        "sex": doc.sex,
        "personal_number": doc.optional_data,
        "optional1": doc.optional_data,
        "optional2": doc.optional_data_2,
    }[name]


def test_every_record_is_read() -> None:
    """Both data files are found and hold the documented numbers of records."""
    assert len(RECORDS) == 27
    assert len(CHECK_DIGITS) == 13


@pytest.mark.parametrize("record", RECORDS, ids=[r["id"] for r in RECORDS])
def test_record(record: dict[str, Any]) -> None:
    """Format, every check-digit verdict, every field and the validity verdict agree."""
    expected = record["expected"]
    result = parse_mrz(record["lines"])
    doc = _document(result)
    assert doc.format == record["format"]

    for name, holds in expected["check_digits"].items():
        assert doc.check(name).ok is holds, name
    for name, value in expected.get("fields", {}).items():
        assert _ours(doc, name) == value, name

    semantics = expected["valid_semantics"]
    if semantics.startswith(CHEMINFO):
        assert (isinstance(result, Mrz) and doc.codes_known) is expected["valid"]
        if "invalid_detail_count" in expected:
            unknown = [c for c in (doc.issuing_state, doc.nationality) if c not in COUNTRY_CODES]
            assert len(doc.failed_checks) + len(unknown) == expected["invalid_detail_count"]
    else:
        assert semantics.startswith(CHECK_DIGITS_ONLY)
        assert isinstance(result, Mrz) is expected["valid"]


@pytest.mark.parametrize(
    "vector", CHECK_DIGITS, ids=[f"{i}:{v['input']!r}" for i, v in enumerate(CHECK_DIGITS)]
)
def test_check_digit(vector: dict[str, Any]) -> None:
    """The 7-3-1 check digit matches; inputs the source refuses ('') give None."""
    want = vector["check_digit"]
    got = mrz_check_digit(vector["input"])
    assert got == (None if want == "" else int(want))
