"""Unit tests of suishen.protocol.identity.cnid (PRC resident ID, legacy, HMT, FPR)."""

from __future__ import annotations

import dataclasses
from datetime import date

import pytest

from suishen.protocol.identity import (
    CnidNumber,
    CnidReason,
    CnidRejection,
    IdKind,
    age_at,
    cnid_check_digit,
    parse_cnid,
    upgrade_15_to_18,
)

GB_EXAMPLE = "11010519491231002X"  # GB 11643-1999's worked example (check digit X)


def _with_check(body: str) -> str:
    """Append a MOD 11-2 check character, computed independently of the module."""
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    total = sum(int(c) * w for c, w in zip(body, weights, strict=True))
    return body + "10X98765432"[total % 11]


def _ok(text: str, **kw: date) -> CnidNumber:
    result = parse_cnid(text, **kw)
    assert isinstance(result, CnidNumber), result
    return result


def _refused(text: str, **kw: date) -> CnidReason:
    result = parse_cnid(text, **kw)
    assert isinstance(result, CnidRejection), result
    return result.reason


def test_standard_example_parses_with_check_x() -> None:
    """The GB 11643 example parses: region, birth date, female, check character X."""
    r = _ok(GB_EXAMPLE)
    assert (r.kind, r.region_code, r.birth_date, r.sex) == (
        IdKind.RIC,
        "110105",
        date(1949, 12, 31),
        "F",
    )
    assert r.check_digit == "X"
    assert r.legacy is None
    assert r.age is None
    assert r.ok is True


def test_check_digit_weights_match_an_independent_computation() -> None:
    """cnid_check_digit agrees with the GB 11643 weight table for a range of bodies."""
    for body in ("11010519491231002", "44030819990110151", "00000000000000000", "9" * 17):
        assert body + cnid_check_digit(body) == _with_check(body)


def test_check_digit_rejects_a_wrong_body() -> None:
    """cnid_check_digit is a contract: anything but 17 ASCII digits raises ValueError."""
    for bad in ("123", "1101051949123100X", "１１０１０５１９４９１２３１００２"):
        with pytest.raises(ValueError, match="17 ASCII digits"):
            cnid_check_digit(bad)


def test_lower_case_x_and_surrounding_whitespace_are_tolerated() -> None:
    """A final 'x' reads as 'X'; whitespace around the number is ignored."""
    assert _ok("  11010519491231002x\r\n").number == GB_EXAMPLE


def test_wrong_check_digit_is_refused() -> None:
    """Changing the check character gives bad_check_digit."""
    assert _refused("110105194912310021") == CnidReason.BAD_CHECK_DIGIT


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", CnidReason.BAD_LENGTH),
        ("1101051949123100", CnidReason.BAD_LENGTH),
        ("11010519491231002X0", CnidReason.BAD_LENGTH),
        ("1101051949123100XX", CnidReason.BAD_CHARACTER),
        ("X10105194912310020", CnidReason.BAD_CHARACTER),
        ("11010519491231002Y", CnidReason.BAD_CHARACTER),
        ("11010519491231٠٠2X", CnidReason.BAD_CHARACTER),  # Arabic-Indic digits
        ("61010462093269X", CnidReason.BAD_CHARACTER),  # legacy numbers have no check
    ],
)
def test_malformed_numbers_are_refused_with_their_reason(text: str, reason: CnidReason) -> None:
    """Wrong length and non-digit characters are typed rejections, not exceptions."""
    assert _refused(text) == reason


@pytest.mark.parametrize(
    "region",
    ["000000", "991234", "710000", "110000", "111111", "500500", "440012"],
)
def test_impossible_region_codes_are_refused(region: str) -> None:
    """Unknown provinces, Taiwan's 71, prefecture 00 and municipality prefectures > 03."""
    number = _with_check(region + "19900101001")
    assert _refused(number) == CnidReason.BAD_REGION


@pytest.mark.parametrize("region", ["110101", "120221", "310115", "500381", "441900", "659001"])
def test_real_region_shapes_are_accepted(region: str) -> None:
    """Municipal districts and counties, a city without counties (441900), XJ 659001."""
    assert _ok(_with_check(region + "19900101001")).region_code == region


@pytest.mark.parametrize("birth", ["19900230", "19901301", "19900000", "17991231"])
def test_impossible_birth_dates_are_refused(birth: str) -> None:
    """30 Feb, month 13, day 0, and years before 1800 give bad_birth_date."""
    assert _refused(_with_check("110101" + birth + "001")) == CnidReason.BAD_BIRTH_DATE


def test_birth_after_at_is_refused_only_when_at_is_given() -> None:
    """Without a clock the parser cannot know the future; with ``at`` it refuses it."""
    number = _with_check("110101" + "20300101" + "001")
    assert _ok(number).birth_date == date(2030, 1, 1)
    assert _refused(number, at=date(2029, 12, 31)) == CnidReason.FUTURE_BIRTH_DATE
    assert _ok(number, at=date(2030, 1, 1)).age == 0


def test_sex_is_the_parity_of_the_17th_digit() -> None:
    """Odd 17th digit = male, even (including 0) = female."""
    assert _ok(_with_check("11010119900101001")).sex == "M"
    assert _ok(_with_check("11010119900101002")).sex == "F"
    assert _ok(_with_check("11010119900101010")).sex == "F"


def test_age_counts_completed_years() -> None:
    """Age turns on the birthday, not the day before; leap-day birthdays turn on 1 March."""
    number = _with_check("11010120000615001")
    assert _ok(number, at=date(2016, 6, 14)).age == 15
    assert _ok(number, at=date(2016, 6, 15)).age == 16
    assert age_at(date(2000, 2, 29), date(2016, 2, 28)) == 15
    assert age_at(date(2000, 2, 29), date(2016, 2, 29)) == 16
    assert age_at(date(2000, 2, 29), date(2017, 3, 1)) == 17
    assert _ok(number).age_at(date(2024, 1, 1)) == 23


def test_legacy_15_digit_number_converts_to_18() -> None:
    """A 15-digit number gains century 19 and a computed check digit; the original is kept."""
    r = _ok("610104620927690", at=date(2024, 1, 1))
    assert r.number == "610104196209276908"
    assert r.legacy == "610104620927690"
    assert (r.birth_date, r.sex, r.age) == (date(1962, 9, 27), "F", 61)
    assert upgrade_15_to_18("610104620927690") == "610104196209276908"


def test_legacy_number_with_impossible_date_is_refused() -> None:
    """The legacy birth date (YYMMDD in the 1900s) is validated like the 18-digit one."""
    assert _refused("610104620932690") == CnidReason.BAD_BIRTH_DATE


def test_upgrade_is_a_contract() -> None:
    """upgrade_15_to_18 raises for anything but 15 ASCII digits."""
    with pytest.raises(ValueError, match="15 ASCII digits"):
        upgrade_15_to_18("61010462092769X")


@pytest.mark.parametrize(
    ("prefix", "region"), [("810000", "HK"), ("820000", "MO"), ("830000", "TW")]
)
def test_hmt_residence_permits(prefix: str, region: str) -> None:
    """810000/820000/830000 numbers are HMT permits with their region."""
    r = _ok(_with_check(prefix + "19940823002"))
    assert (r.kind, r.permit_region, r.nationality_code) == (IdKind.HMT, region, None)


def test_other_81_codes_are_not_permits() -> None:
    """Only the exact permit prefixes count; 810100 is no region and no permit."""
    assert _refused(_with_check("810100" + "19940823002")) == CnidReason.BAD_REGION


def test_hmt_prefix_is_not_read_from_a_legacy_number() -> None:
    """Permits were introduced in 2018: a 15-digit 810000 number is not one."""
    assert _refused("810000940823002") == CnidReason.BAD_REGION


def test_foreigner_permanent_residence_number() -> None:
    """A 9-prefixed 18-digit number is an FPR: province, nationality code, birth, sex."""
    number = _with_check("9" + "31" + "840" + "19850704" + "003")
    r = _ok(number, at=date(2024, 7, 4))
    assert (r.kind, r.region_code, r.nationality_code) == (IdKind.FPR, "310000", "840")
    assert (r.birth_date, r.sex, r.age) == (date(1985, 7, 4), "M", 39)
    assert r.permit_region is None


def test_fpr_with_unknown_province_or_bad_check_is_refused() -> None:
    """The FPR province digits and its MOD 11-2 check digit are both verified."""
    assert _refused(_with_check("9" + "99" + "840" + "19850704" + "003")) == CnidReason.BAD_REGION
    good = _with_check("9" + "31" + "840" + "19850704" + "003")
    bad = good[:17] + ("0" if good[17] != "0" else "1")
    assert _refused(bad) == CnidReason.BAD_CHECK_DIGIT


def test_records_are_frozen_and_validated_on_creation() -> None:
    """CnidNumber is immutable and refuses to be built with an invalid number."""
    r = _ok(GB_EXAMPLE)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.number = "x"  # type: ignore[misc]
    with pytest.raises(ValueError, match="valid 18-character"):
        dataclasses.replace(r, number="110105194912310021")
    with pytest.raises(ValueError, match="permit_region"):
        dataclasses.replace(r, permit_region="HK")
    rejection = parse_cnid("1")
    assert isinstance(rejection, CnidRejection)
    assert rejection.ok is False
    assert rejection.length == 1
