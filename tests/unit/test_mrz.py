"""Unit tests of suishen.protocol.identity.mrz (ICAO 9303 TD1, TD2, TD3)."""

from __future__ import annotations

import dataclasses
from datetime import date

import pytest

from suishen.protocol.identity import (
    Mrz,
    MrzFormat,
    MrzReason,
    MrzRejection,
    mrz_check_digit,
    parse_mrz,
)

TD3 = (
    "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<",
    "L898902C36UTO7408122F1204159ZE184226B<<<<<10",
)
TD2 = ("I<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<", "D231458907UTO7408122F1204159<<<<<<<6")
TD1 = (
    "I<UTOD231458907<<<<<<<<<<<<<<<",
    "7408122F1204159UTO<<<<<<<<<<<6",
    "ERIKSSON<<ANNA<MARIA<<<<<<<<<<",
)


def _cd(field: str) -> str:
    """An independent 7-3-1 check digit for building test MRZs."""
    values = {**{str(i): i for i in range(10)}, "<": 0}
    values |= {chr(65 + i): 10 + i for i in range(26)}
    return str(sum(values[c] * (7, 3, 1)[i % 3] for i, c in enumerate(field)) % 10)


def _td3(
    *,
    number: str = "L898902C3",
    nat: str = "UTO",
    birth: str = "740812",
    sex: str = "F",
    expiry: str = "120415",
    personal: str = "ZE184226B<<<<<",
    names: str = "ERIKSSON<<ANNA<MARIA",
    code: str = "P<",
) -> tuple[str, str]:
    """A TD3 block with every check digit correct."""
    line1 = (code + "UTO" + names).ljust(44, "<")
    head = number + _cd(number) + nat + birth + _cd(birth) + sex + expiry + _cd(expiry)
    pcd = "<" if set(personal) == {"<"} else _cd(personal)
    body = head + personal + pcd
    composite = body[0:10] + body[13:20] + body[21:43]
    return line1, body + _cd(composite)


def _ok(block: object, **kw: date) -> Mrz:
    result = parse_mrz(block, **kw)  # type: ignore[arg-type]
    assert isinstance(result, Mrz), result
    return result


def _refused(block: object, **kw: date) -> MrzRejection:
    result = parse_mrz(block, **kw)  # type: ignore[arg-type]
    assert isinstance(result, MrzRejection), result
    return result


def test_td3_specimen_fields() -> None:
    """The ICAO passport specimen decodes into every field, checks all holding."""
    m = _ok(TD3)
    assert m.format is MrzFormat.TD3
    assert (m.document_code, m.issuing_state, m.nationality) == ("P", "UTO", "UTO")
    assert (m.surname, m.given_names) == ("ERIKSSON", "ANNA MARIA")
    assert (m.document_number, m.optional_data, m.optional_data_2) == ("L898902C3", "ZE184226B", "")
    assert (m.birth_date_raw, m.expiry_date_raw, m.sex) == ("740812", "120415", "F")
    assert [c.name for c in m.checks] == [
        "document_number",
        "birth_date",
        "expiry_date",
        "personal_number",
        "composite",
    ]
    assert m.ok
    assert m.failed_checks == ()
    assert m.birth_date is None  # no ``at``: dates stay as printed


def test_td2_and_td1_specimens() -> None:
    """The TD2 and TD1 specimens give the same person and document number."""
    for block, fmt in ((TD2, MrzFormat.TD2), (TD1, MrzFormat.TD1)):
        m = _ok(block)
        assert m.format is fmt
        assert (m.document_code, m.document_number, m.surname) == ("I", "D23145890", "ERIKSSON")
        assert [c.name for c in m.checks] == [
            "document_number",
            "birth_date",
            "expiry_date",
            "composite",
        ]


@pytest.mark.parametrize(
    "block",
    [
        "\n".join(TD3),
        "  " + TD3[0] + "  \r\n\n" + TD3[1] + "\n\n",
        "".join(TD3),
        [" " + TD3[0], "", TD3[1] + "\n"],
        tuple(TD3),
        "".join(TD1),
        "".join(TD2),
    ],
)
def test_block_forms(block: object) -> None:
    """Lines or one string, newlines or run together, blank lines and whitespace around."""
    assert _ok(block).ok


@pytest.mark.parametrize(
    "block",
    ["", TD3[0], (TD3[0], TD3[1][:-1]), (*TD1[:2], TD3[0][:30], TD1[2]), (TD3[0], TD2[1])],
)
def test_wrong_layouts_are_refused(block: object) -> None:
    """Wrong line counts or widths give bad_layout."""
    assert _refused(block).reason is MrzReason.BAD_LAYOUT


def test_huge_input_is_refused_cheaply() -> None:
    """More than 1 KiB of text, or more than 8 lines, is not an MRZ."""
    assert _refused("<" * 5000).reason is MrzReason.BAD_LAYOUT
    assert _refused([TD3[0]] * 9).reason is MrzReason.BAD_LAYOUT


def test_lower_case_and_foreign_characters_are_refused() -> None:
    """The MRZ alphabet is A-Z 0-9 '<'; anything else gives bad_character."""
    assert _refused((TD3[0].lower(), TD3[1])).reason is MrzReason.BAD_CHARACTER
    assert _refused((TD3[0].replace("ANNA", "ÄNNA"), TD3[1])).reason is MrzReason.BAD_CHARACTER


def test_visas_are_unsupported() -> None:
    """A 'V' document code (machine-readable visa, a different layout) is refused."""
    line1, line2 = _td3(code="V<")
    assert _refused((line1, line2)).reason is MrzReason.UNSUPPORTED_DOCUMENT


def test_bad_sex_and_dates_are_field_errors() -> None:
    """A sex outside M/F/X/< and impossible dates are bad_field, with the field named."""
    r = _refused(_td3(sex="Q", birth="741312", expiry="12O415"))
    assert r.reason is MrzReason.BAD_FIELD
    assert r.fields == ("sex", "birth_date", "expiry_date")
    assert _refused(("1" + TD3[0][1:], TD3[1])).fields == ("document_code",)


def test_each_wrong_check_digit_is_named() -> None:
    """A wrong digit fails its own check and the composite; the rejection names both."""
    line2 = TD3[1][:19] + "3" + TD3[1][20:]  # birth-date check digit 2 -> 3
    r = _refused((TD3[0], line2))
    assert r.reason is MrzReason.BAD_CHECK_DIGIT
    assert r.fields == ("birth_date", "composite")
    assert r.document is not None
    assert r.document.check("birth_date").printed == "3"
    assert r.document.surname == "ERIKSSON"


def test_unspecified_sex_and_unknown_birth_day() -> None:
    """'<' and 'X' both mean unspecified sex; '<<' for an unknown day is allowed."""
    m = _ok(_td3(sex="<", birth="7408<<"), at=date(2024, 1, 1))
    assert m.sex == "X"
    assert m.birth_date is None
    assert m.age is None
    assert _ok(_td3(sex="X")).sex == "X"


def test_dates_resolve_against_at() -> None:
    """Birth takes the latest century not after ``at``; expiry the century within 50 years."""
    m = _ok(_td3(birth="090301", expiry="340228"), at=date(2024, 3, 1))
    assert (m.birth_date, m.age) == (date(2009, 3, 1), 15)
    assert (m.expiry_date, m.expired) == (date(2034, 2, 28), False)
    old = _ok(_td3(birth="250301"), at=date(2024, 3, 1))
    assert old.birth_date == date(1925, 3, 1)
    spec = _ok(TD3, at=date(2024, 1, 1))
    assert (spec.birth_date, spec.expiry_date, spec.expired) == (
        date(1974, 8, 12),
        date(2012, 4, 15),
        True,
    )


def test_empty_personal_number_may_have_filler_check() -> None:
    """An all-filler TD3 personal number is checked by '<' or by '0'."""
    line1, line2 = _td3(personal="<" * 14)
    assert line2[42] == "<"
    assert _ok((line1, line2)).optional_data == ""
    zero = line2[:42] + "0" + line2[43:]
    assert _ok((line1, zero)).check("personal_number").ok


def test_names_without_given_names_and_without_surname() -> None:
    """No '<<' means surname only; a leading '<<' means given names only."""
    assert (_ok(_td3(names="MADONNA")).surname, _ok(_td3(names="MADONNA")).given_names) == (
        "MADONNA",
        "",
    )
    m = _ok(_td3(names="<<FIRST<NAME"))
    assert (m.surname, m.given_names) == ("", "FIRST NAME")


def test_td1_long_document_number_overflows_into_optional_data() -> None:
    """ICAO Part 11 sample: '<' in the check position, number continues in optional data."""
    m = _ok(
        (
            "I<UTOD23145890<7349<<<<<<<<<<<",
            "3407127M9507122UTO<<<<<<<<<<<2",
            "STEVENSON<<PETER<JOHN<<<<<<<<<",
        )
    )
    assert m.document_number == "D23145890734"
    assert m.check("document_number").printed == "9"
    assert m.optional_data == "7349"


def test_long_number_check_accepts_both_readings_of_the_filler() -> None:
    """Issuers compute the long-number check with or without the '<'; both are accepted."""
    with_filler = (
        "IDBEL000590240<6013<<<<<<<<<<<",
        "8512017F1311048BEL851201002007",
        "REINARTZ<<ULRIKE<KATIA<E<<<<<<",
    )
    without = (
        "IDBEL600001795<0152<<<<<<<<<<<",
        "1301014F2311207BEL130101987398",
        "SPECIMEN<<SPECIMEN<<<<<<<<<<<<",
    )
    assert _ok(with_filler).document_number == "000590240601"
    assert _ok(without).document_number == "600001795015"


def test_td1_without_overflow_but_filler_check_fails() -> None:
    """A '<' in the check position with empty optional data is a failed number check."""
    line1 = "I<UTOD23145890<<<<<<<<<<<<<<<<"
    line2 = "7408122F1204159UTO<<<<<<<<<<<"
    composite = line1[5:30] + line2[0:7] + line2[8:15] + line2[18:29]
    r = _refused((line1, line2 + _cd(composite), TD1[2]))
    assert r.fields == ("document_number",)


def test_codes_known() -> None:
    """UTO is the ICAO specimen code (unknown); CHN and Germany's ICAO code D are known."""
    assert _ok(TD3).codes_known is False
    assert _ok(_td3(nat="CHN")).codes_known is False  # issuing state still UTO
    de = _ok(("P<D<<MUSTERMANN<<ERIKA" + "<" * 22, "C01X0006H1D<<6408125F1710319" + "<" * 15 + "0"))
    assert (de.issuing_state, de.nationality, de.codes_known) == ("D", "D", True)


def test_check_digit_function() -> None:
    """7-3-1 weights, '<' = 0, A = 10; empty or foreign input gives None."""
    assert mrz_check_digit("L898902C3") == 6
    assert mrz_check_digit("740812") == 2
    assert mrz_check_digit("<<<<") == 0
    assert mrz_check_digit("A") == 0  # 10 * 7 = 70
    assert mrz_check_digit("Z") == 5  # 35 * 7 = 245
    assert mrz_check_digit("") is None
    assert mrz_check_digit("a") is None


def test_records_are_frozen() -> None:
    """Mrz is a frozen dataclass; unknown check names raise KeyError."""
    m = _ok(TD3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.surname = "X"  # type: ignore[misc]
    with pytest.raises(KeyError):
        m.check("nope")
    assert _refused("").ok is False


@pytest.mark.parametrize("nat", ["<<<", "DE<", "1<<", "<DE", "D1<", "12A"])
def test_nationality_must_be_shaped_like_a_code(nat: str) -> None:
    """Regression: no check digit covers the nationality, and a passport is keyed by it; a
    field that is not three letters or Germany's "D<<" is bad_field, not a valid MRZ."""
    r = _refused(_td3(nat=nat))
    assert (r.reason, r.fields) == (MrzReason.BAD_FIELD, ("nationality",))
    assert _ok(_td3(nat="D<<")).nationality == "D"
    assert _ok(_td3(nat="XXA")).nationality == "XXA"
