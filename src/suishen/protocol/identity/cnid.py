"""PRC identity numbers: resident ID (GB 11643), legacy 15-digit, HMT and FPR permits.

One parser, :func:`parse_cnid`, reads any of the four number families and returns a
:class:`CnidNumber` or a :class:`CnidRejection` (expected bad input is a value, not an
exception):

==========  =======================================================================
kind        layout (positions 1-based)
==========  =======================================================================
``RIC``     18 digits: 1-6 region code, 7-14 birth date YYYYMMDD, 15-17 sequence
            (17 odd = male), 18 MOD 11-2 check digit (``X`` = 10).  A 15-digit legacy
            number (1-6 region, 7-12 birth date YYMMDD in the 1900s, 13-15 sequence,
            15 odd = male, no check digit) is converted to its 18-digit form.
``HMT``     Hong Kong / Macao / Taiwan residents' residence permit: an 18-digit RIC
            layout whose region code is exactly 810000 (HK), 820000 (MO) or 830000 (TW).
``FPR``     Foreigner permanent-residence ID, 2023 version: 18 characters, 1 is ``9``,
            2-3 the accepting province's code, 4-6 the nationality's numeric code,
            7-14 birth date, 15-17 sequence (17 odd = male), 18 MOD 11-2 check digit.
==========  =======================================================================

Region codes are checked structurally, not against the national GB/T 2260 table (which
changes every year and would tie a gateway to a data file): the province must be one of
the 31 mainland province-level codes, the prefecture digits must not be ``00``, and for
the four municipalities (Beijing, Tianjin, Shanghai, Chongqing) the prefecture digits
must be 01-03.  Taiwan's 71 is refused: no resident ID is issued with it (Taiwan
residents hold 830000 permits).  So this parser is *lenient* where the id-validator
libraries' "strict" mode is strict (it does not know when a county code was created).

Pure and clock-free: "today" is the ``at`` parameter.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date
from typing import Final, Literal

__all__ = [
    "MIN_BIRTH_YEAR",
    "CnidNumber",
    "CnidReason",
    "CnidRejection",
    "IdKind",
    "age_at",
    "cnid_check_digit",
    "parse_cnid",
    "upgrade_15_to_18",
]

Sex = Literal["M", "F"]

#: Earliest birth year accepted (GB 11643's own example is born in 1880).
MIN_BIRTH_YEAR: Final = 1800

_WEIGHTS: Final = tuple(pow(2, 17 - i, 11) for i in range(17))  # 7 9 10 5 8 4 2 1 6 3 ...
_CHECK_CHARS: Final = "10X98765432"  # index = weighted sum mod 11
_DIGITS: Final = frozenset("0123456789")

#: Province-level codes of mainland China (GB/T 2260), as used in the first two digits.
PROVINCES: Final = frozenset(
    {
        "11", "12", "13", "14", "15",
        "21", "22", "23",
        "31", "32", "33", "34", "35", "36", "37",
        "41", "42", "43", "44", "45", "46",
        "50", "51", "52", "53", "54",
        "61", "62", "63", "64", "65",
    }
)  # fmt: skip
_MUNICIPALITIES: Final = frozenset({"11", "12", "31", "50"})
_MUNICIPALITY_PREFECTURES: Final = frozenset({"01", "02", "03"})
#: Residence-permit region codes and the region each stands for.
HMT_REGIONS: Final = {"810000": "HK", "820000": "MO", "830000": "TW"}


class IdKind(enum.StrEnum):
    """The identity families, named as the code claim ``idt`` names them (DESIGN §3)."""

    RIC = "RIC"
    HMT = "HMT"
    FPR = "FPR"


class CnidReason(enum.StrEnum):
    """Why a number was refused; one value per failure, checked in this order."""

    BAD_LENGTH = "bad_length"  # not 15 or 18 characters after trimming whitespace
    BAD_CHARACTER = "bad_character"  # not ASCII digits (plus a final X on 18-char numbers)
    BAD_REGION = "bad_region"  # region / province code structurally impossible
    BAD_BIRTH_DATE = "bad_birth_date"  # not a calendar date, or before MIN_BIRTH_YEAR
    FUTURE_BIRTH_DATE = "future_birth_date"  # born after ``at``
    BAD_CHECK_DIGIT = "bad_check_digit"  # MOD 11-2 check character does not match


@dataclass(frozen=True, slots=True, kw_only=True)
class CnidRejection:
    """A number that is not a valid identity number, and the first reason found."""

    reason: CnidReason
    length: int

    @property
    def ok(self) -> Literal[False]:
        return False


@dataclass(frozen=True, slots=True, kw_only=True)
class CnidNumber:
    """A valid identity number.

    ``number`` is always the canonical 18-character form (upper-case ``X``); ``legacy``
    holds the 15-digit original when the input was a legacy number.  ``age`` is the age
    in whole years at the ``at`` date given to the parser, or None without one.
    ``region_code`` is the six-digit address code; for an FPR number it is the accepting
    province's code padded with ``0000`` (the nationality's numeric code is
    ``nationality_code``).
    """

    kind: IdKind
    number: str
    legacy: str | None
    region_code: str
    birth_date: date
    sex: Sex
    age: int | None
    permit_region: Literal["HK", "MO", "TW"] | None = None
    nationality_code: str | None = None

    def __post_init__(self) -> None:
        if len(self.number) != 18 or cnid_check_digit(self.number[:17]) != self.number[17]:
            raise ValueError("CnidNumber.number must be a valid 18-character number")
        if self.legacy is not None and len(self.legacy) != 15:
            raise ValueError("CnidNumber.legacy must be a 15-digit number")
        if (self.kind is IdKind.HMT) != (self.permit_region is not None):
            raise ValueError("permit_region is set exactly for HMT permits")
        if (self.kind is IdKind.FPR) != (self.nationality_code is not None):
            raise ValueError("nationality_code is set exactly for FPR numbers")

    @property
    def ok(self) -> Literal[True]:
        return True

    @property
    def check_digit(self) -> str:
        return self.number[17]

    def age_at(self, at: date) -> int:
        """Age in whole years on ``at``."""
        return age_at(self.birth_date, at)


def cnid_check_digit(body: str) -> str:
    """The GB 11643 MOD 11-2 check character ('0'-'9' or 'X') of 17 ASCII digits."""
    if len(body) != 17 or not _DIGITS.issuperset(body):
        raise ValueError("the check digit is computed over exactly 17 ASCII digits")
    total = sum(int(c) * w for c, w in zip(body, _WEIGHTS, strict=True))
    return _CHECK_CHARS[total % 11]


def age_at(birth: date, at: date) -> int:
    """Completed years between ``birth`` and ``at`` (a 29 February birthday turns on 1 March)."""
    return at.year - birth.year - ((at.month, at.day) < (birth.month, birth.day))


def upgrade_15_to_18(legacy: str) -> str:
    """The 18-digit form of a 15-digit legacy number: century 19 and a computed check digit.

    Raises ValueError for anything but 15 ASCII digits (callers validate with
    :func:`parse_cnid` first; this is the bare transformation).
    """
    if len(legacy) != 15 or not _DIGITS.issuperset(legacy):
        raise ValueError("a legacy number is exactly 15 ASCII digits")
    body = legacy[:6] + "19" + legacy[6:]
    return body + cnid_check_digit(body)


def _region_ok(code: str) -> bool:
    province, prefecture = code[:2], code[2:4]
    if province not in PROVINCES or prefecture == "00":
        return False
    return province not in _MUNICIPALITIES or prefecture in _MUNICIPALITY_PREFECTURES


def _birth_date(text: str) -> date | None:
    try:
        born = date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return None
    return born if born.year >= MIN_BIRTH_YEAR else None


def parse_cnid(text: str, *, at: date | None = None) -> CnidNumber | CnidRejection:
    """Parse a PRC identity number (RIC, legacy RIC, HMT permit or FPR).

    Surrounding whitespace is ignored and a final lower-case ``x`` is read as ``X``.
    With ``at`` the result carries the age on that day and a birth date after it is
    refused; without it no age is computed and no "future" check is made.
    """
    raw = text.strip()
    length = len(raw)
    if length not in (15, 18):
        return CnidRejection(reason=CnidReason.BAD_LENGTH, length=length)
    if length == 18 and raw[17] == "x":
        raw = raw[:17] + "X"
    body = raw[:17] if length == 18 else raw
    if not _DIGITS.issuperset(body) or (length == 18 and raw[17] not in _DIGITS | {"X"}):
        return CnidRejection(reason=CnidReason.BAD_CHARACTER, length=length)

    legacy: str | None = None
    if length == 15:
        legacy, number = raw, raw[:6] + "19" + raw[6:]  # check digit appended below
    else:
        number = raw

    kind = IdKind.RIC
    permit_region: Literal["HK", "MO", "TW"] | None = None
    nationality_code: str | None = None
    region = number[:6]
    if number[0] == "9" and legacy is None:
        kind, nationality_code, region = IdKind.FPR, number[3:6], number[1:3] + "0000"
        if number[1:3] not in PROVINCES:
            return CnidRejection(reason=CnidReason.BAD_REGION, length=length)
    elif region in HMT_REGIONS and legacy is None:
        kind = IdKind.HMT
        permit_region = "HK" if region == "810000" else "MO" if region == "820000" else "TW"
    elif not _region_ok(region):
        return CnidRejection(reason=CnidReason.BAD_REGION, length=length)

    born = _birth_date(number[6:14])
    if born is None:
        return CnidRejection(reason=CnidReason.BAD_BIRTH_DATE, length=length)
    if at is not None and born > at:
        return CnidRejection(reason=CnidReason.FUTURE_BIRTH_DATE, length=length)

    expected = cnid_check_digit(number[:17])
    if legacy is not None:
        number += expected
    elif number[17] != expected:
        return CnidRejection(reason=CnidReason.BAD_CHECK_DIGIT, length=length)

    return CnidNumber(
        kind=kind,
        number=number,
        legacy=legacy,
        region_code=region,
        birth_date=born,
        sex="M" if int(number[16]) % 2 else "F",
        age=None if at is None else age_at(born, at),
        permit_region=permit_region,
        nationality_code=nationality_code,
    )
