"""Property tests (hypothesis) of the identity parsers and masking.

Any text gives a result or a typed rejection, never an exception; generated valid
numbers round-trip; the legacy conversion keeps the birth date; masking never shows more
than DESIGN §4 allows.
"""

from __future__ import annotations

import re
from datetime import date

from hypothesis import given
from hypothesis import strategies as st

from suishen.protocol.identity import (
    CnidNumber,
    CnidRejection,
    Mrz,
    MrzRejection,
    cnid_check_digit,
    parse_cnid,
    parse_mrz,
    upgrade_15_to_18,
)
from suishen.protocol.person import mask_name, mask_number

REGIONS = ["110101", "310115", "440308", "500381", "610104", "650102", "441900", "810000"]
MRZ_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789<"
SEPARATORS = re.compile(r"[\s·•・.,\-]+")

digits = st.text(alphabet="0123456789", min_size=0, max_size=20)
near_cnid = st.one_of(
    digits,
    st.builds(lambda d, x: d + x, digits, st.sampled_from(["X", "x", "", " ", "Y"])),
    st.text(alphabet="0123456789Xx \t\n١２", max_size=20),
)
mrz_line = st.integers(min_value=28, max_value=46).flatmap(
    lambda n: st.text(alphabet=MRZ_ALPHABET, min_size=n, max_size=n)
)


@given(st.one_of(st.text(), near_cnid), st.none() | st.dates())
def test_parse_cnid_never_raises(text: str, at: date | None) -> None:
    """Any text, with or without ``at``, yields a CnidNumber or a CnidRejection."""
    result = parse_cnid(text, at=at)
    assert isinstance(result, CnidNumber | CnidRejection)
    if isinstance(result, CnidNumber):
        assert result.number[:17] + cnid_check_digit(result.number[:17]) == result.number


@given(st.one_of(st.text(), st.lists(st.text(), max_size=5), st.lists(mrz_line, max_size=4)))
def test_parse_mrz_never_raises(block: str | list[str]) -> None:
    """Any text or list of lines yields an Mrz or an MrzRejection."""
    result = parse_mrz(block, at=date(2024, 1, 1))
    assert isinstance(result, Mrz | MrzRejection)


@given(st.sampled_from([(3, 30), (2, 36), (2, 44)]), st.data())
def test_parse_mrz_never_raises_on_well_shaped_noise(
    shape: tuple[int, int], data: st.DataObject
) -> None:
    """Blocks of the right shape and alphabet reach the field and check-digit code safely."""
    count, width = shape
    line = st.text(alphabet=MRZ_ALPHABET, min_size=width, max_size=width)
    lines = data.draw(st.lists(line, min_size=count, max_size=count))
    at = data.draw(st.none() | st.dates())
    result = parse_mrz(lines, at=at)
    assert isinstance(result, Mrz | MrzRejection)
    if isinstance(result, MrzRejection) and result.document is not None:
        assert result.document.failed_checks == result.fields


valid_18 = st.builds(
    lambda region, born, seq: region + born.strftime("%Y%m%d") + f"{seq:03d}",
    st.sampled_from(REGIONS),
    st.dates(min_value=date(1900, 1, 1), max_value=date(2099, 12, 31)),
    st.integers(min_value=0, max_value=999),
).map(lambda body: body + cnid_check_digit(body))


@given(valid_18)
def test_valid_18_digit_numbers_round_trip(number: str) -> None:
    """A generated valid number parses back to itself with its birth date and sex."""
    result = parse_cnid(number)
    assert isinstance(result, CnidNumber)
    assert result.number == number
    assert result.birth_date.strftime("%Y%m%d") == number[6:14]
    assert result.sex == ("M" if int(number[16]) % 2 else "F")
    assert parse_cnid(number.lower()) == result


@given(valid_18, st.integers(min_value=0, max_value=17), st.integers(min_value=1, max_value=9))
def test_any_single_digit_error_is_caught(number: str, pos: int, delta: int) -> None:
    """MOD 11-2 detects every single-character substitution: the result is never valid
    with a different number."""
    alphabet = "0123456789X" if pos == 17 else "0123456789"
    old = alphabet.index(number[pos])
    new = alphabet[(old + delta) % len(alphabet)]
    changed = number[:pos] + new + number[pos + 1 :]
    result = parse_cnid(changed)
    assert not isinstance(result, CnidNumber)


@given(
    st.sampled_from([r for r in REGIONS if r != "810000"]),
    st.dates(min_value=date(1900, 1, 1), max_value=date(1999, 12, 31)),
    st.integers(min_value=0, max_value=999),
)
def test_legacy_conversion_preserves_birth_date(region: str, born: date, seq: int) -> None:
    """15 -> 18 keeps region, birth date and sex; the 18-digit form parses the same."""
    legacy = region + born.strftime("%y%m%d") + f"{seq:03d}"
    result = parse_cnid(legacy)
    assert isinstance(result, CnidNumber)
    assert result.birth_date == born
    assert result.number == upgrade_15_to_18(legacy)
    again = parse_cnid(result.number)
    assert isinstance(again, CnidNumber)
    assert (again.birth_date, again.sex, again.region_code) == (born, result.sex, region)


@given(st.text())
def test_mask_number_reveals_at_most_seven_and_at_most_half(number: str) -> None:
    """Same length as the trimmed input; revealed characters <= 7 and <= half, in place."""
    text = number.strip()
    masked = mask_number(number)
    assert len(masked) == len(text)
    shown = [i for i, c in enumerate(masked) if c != "*"]
    assert len(shown) <= min(7, len(text) // 2)
    assert all(masked[i] == text[i] for i in shown)


@given(st.text())
def test_mask_name_reveals_at_most_one_per_word_or_two_of_one_word(name: str) -> None:
    """One word: at most 2 characters shown, and never all of them; several words: at
    most one character per word."""
    text = name.strip()
    masked = mask_name(name)
    words = [w for w in SEPARATORS.split(text) if w]
    shown = [c for c in SEPARATORS.sub("", masked) if c != "*"]
    if len(words) <= 1:
        assert len(shown) <= 2
        assert not words or len(shown) < len(words[0])
    else:
        assert len(shown) <= len(words)


def _cd(field: str) -> str:
    values = {c: i for i, c in enumerate("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ")} | {"<": 0}
    return str(sum(values[c] * (7, 3, 1)[i % 3] for i, c in enumerate(field)) % 10)


name_part = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=8)


@given(
    number=st.text(alphabet=MRZ_ALPHABET[:-1], min_size=9, max_size=9),
    born=st.dates(min_value=date(1930, 1, 1), max_value=date(2023, 12, 31)),
    expiry=st.dates(min_value=date(2000, 1, 1), max_value=date(2060, 12, 31)),
    sex=st.sampled_from("MF<"),
    surname=name_part,
    given_names=st.lists(name_part, min_size=1, max_size=3),
)
def test_generated_td3_round_trips(
    *, number: str, born: date, expiry: date, sex: str, surname: str, given_names: list[str]
) -> None:
    """A TD3 built with correct check digits parses back to its fields and dates."""
    line1 = ("P<CHN" + surname + "<<" + "<".join(given_names))[:44].ljust(44, "<")
    b, e = born.strftime("%y%m%d"), expiry.strftime("%y%m%d")
    body = number + _cd(number) + "CHN" + b + _cd(b) + sex + e + _cd(e) + "<" * 14 + "<"
    line2 = body + _cd(body[0:10] + body[13:20] + body[21:43])
    result = parse_mrz(f"{line1}\n{line2}", at=date(2024, 1, 1))
    assert isinstance(result, Mrz)
    assert (result.document_number, result.nationality) == (number, "CHN")
    assert result.birth_date == born
    assert result.expiry_date == expiry
    if len("P<CHN" + surname + "<<" + "<".join(given_names)) <= 44:
        assert (result.surname, result.given_names) == (surname, " ".join(given_names))
