"""PRC identity numbers against tests/conformance/data/cnid_vectors.jsonl (every record).

Each record carries the verdict of its source and a ``semantics`` field saying how strict
that source is.  Our parser is structural (see suishen.protocol.identity.cnid): MOD 11-2
check digit, calendar birth date, a structurally possible region code, HMT and FPR
prefixes.  It deliberately carries no national address-code table, so:

- the GB 11643 examples ("standard's own examples") must parse, with their fields;
- jxlwqq verdicts of True must be accepted, and of False must be refused, except the
  verdicts that only jxlwqq's *strict* mode (an address code must have existed on the
  birth date, looked up in its dated national table) produces: those numbers are
  accepted here, and the same file lists the same number as valid in lenient mode;
- jxlwqq ``getInfo`` records (expected_valid null: the source reads fields without
  judging validity, e.g. retired "abandoned" county codes) must parse, with their birth
  date, sex and check digit; address names are not compared (no table here).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from suishen.protocol.identity import CnidNumber, CnidRejection, parse_cnid
from tests.conformance.data import read_jsonl

RECORDS: list[dict[str, Any]] = read_jsonl("cnid_vectors.jsonl")
# Refusals that depend on the dated national address table (strict mode only).
STRICT_TABLE_ONLY = {
    "jxlwqq-php/18": "strict mode: birth date (1993) before county 500154 was created",
    "jxlwqq-php/23": "strict mode: county 411082 created after the 1989 birth date",
    "jxlwqq-py/36": "the Python port checks the dated table by default (same as php/18)",
}


def _lenient_valid_numbers() -> set[str]:
    return {r["number"] for r in RECORDS if r["expected_valid"] is True}


def test_every_record_is_read() -> None:
    """The data file is found next to the repository and holds the documented 33 records."""
    assert len(RECORDS) == 33
    assert len({r["id"] for r in RECORDS}) == len(RECORDS)


def test_strict_only_exceptions_are_exactly_the_table_dependent_refusals() -> None:
    """The excepted records are precisely those refused by one mode and accepted by another.

    So no other refusal can be silently excepted: a new record refused for any other
    reason must be refused by our parser too.
    """
    lenient = _lenient_valid_numbers()
    derived = {r["id"] for r in RECORDS if r["expected_valid"] is False and r["number"] in lenient}
    assert derived == set(STRICT_TABLE_ONLY)


@pytest.mark.parametrize("record", RECORDS, ids=[r["id"] for r in RECORDS])
def test_record(record: dict[str, Any]) -> None:
    """Our verdict and fields agree with the source's, read through its stated semantics."""
    result = parse_cnid(record["number"], at=date(2024, 6, 1))
    expected = record["expected_valid"]
    fields = record["expected_fields"]

    if record["id"] in STRICT_TABLE_ONLY:
        assert "strict" in record["semantics"] or "default mode" in record["semantics"]
        assert isinstance(result, CnidNumber), STRICT_TABLE_ONLY[record["id"]]
        return
    if expected is False:
        assert isinstance(result, CnidRejection), record["note"]
        return
    # True (valid) or None (getInfo: fields only): both must parse.
    assert isinstance(result, CnidNumber), record["note"]
    assert (result.legacy is None) == (record["length"] == 18)
    if "birth_date" in fields:
        assert result.birth_date.isoformat() == fields["birth_date"]
    if "sex" in fields:
        sex = fields["sex"]
        want = {1: "M", 0: "F", "male": "M", "female": "F"}[sex]
        assert result.sex == want
    if "check_bit" in fields:
        assert result.check_digit == fields["check_bit"]
    if "upgraded_18" in fields:
        assert result.number == fields["upgraded_18"]
    if "address_code" in fields:
        assert result.region_code == fields["address_code"]
    if "length" in fields:
        assert len(record["number"]) == fields["length"]
