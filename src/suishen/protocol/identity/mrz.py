"""ICAO Doc 9303 machine-readable zones: TD1 (3x30), TD2 (2x36) and TD3 (2x44).

:func:`parse_mrz` takes the block as one string (lines separated by newlines, or the
lines run together) or as a sequence of lines, ignores surrounding whitespace and blank
lines, and returns an :class:`Mrz` when every check digit holds, else an
:class:`MrzRejection` (expected bad input is a value, not an exception).

Check digits use the 7-3-1 weights over ``0-9`` = 0..9, ``A-Z`` = 10..35, ``<`` = 0.
Checked: document number, birth date, expiry date, the composite, and on TD3 the
personal number (whose check digit may be ``<`` when the field is empty).

Long document numbers (TD1 and TD2): when the document-number check position holds
``<``, the number continues in the optional data up to the first ``<``; the last
character there is the check digit, computed over the whole number (Doc 9303 Part 5,
note j of the TD1 layout).  Doc 9303 does not say whether the ``<`` standing in the
check-digit position takes part; issuers differ (Belgian specimen BEL-BO-11005 leaves it
out, BEL-BO-03003 keeps it; ICAO's own sample gives the same digit both ways), so either
reading is accepted, as cheminfo/mrz does.  ``optional_data`` keeps the field as
printed, overflow included.

Dates stay as printed (``YYMMDD``, ``<`` for an unknown part) and are resolved to
calendar dates only when the caller passes ``at`` (no clock is read here): a birth date
is the latest century not after ``at``; an expiry date the century within 50 years of it.

Country codes are not a validity condition (the ICAO specimens use the fictional
``UTO``); :attr:`Mrz.codes_known` says whether both are ISO 3166-1 alpha-3 or ICAO
9303 Part 3 codes.  The nationality field must still be shaped like a code, three
letters or Germany's ``D<<`` (Doc 9303 Part 3): no check digit covers it, and a passport
is keyed by it, so a blank, digit or two-letter field is a bad_field.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Final, Literal

from suishen.protocol.identity.cnid import age_at

__all__ = [
    "COUNTRY_CODES",
    "Mrz",
    "MrzCheck",
    "MrzFormat",
    "MrzReason",
    "MrzRejection",
    "mrz_check_digit",
    "parse_mrz",
]

_VALUES: Final = {
    **{chr(48 + i): i for i in range(10)},
    **{chr(65 + i): 10 + i for i in range(26)},
    "<": 0,
}
_WEIGHTS: Final = (7, 3, 1)
_MAX_INPUT: Final = 1024  # a real MRZ is at most 92 characters with separators

#: ISO 3166-1 alpha-3 codes.
_ISO3166: Final = """
ABW AFG AGO AIA ALA ALB AND ARE ARG ARM ASM ATA ATF ATG AUS AUT AZE BDI BEL BEN BES
BFA BGD BGR BHR BHS BIH BLM BLR BLZ BMU BOL BRA BRB BRN BTN BVT BWA CAF CAN CCK CHE
CHL CHN CIV CMR COD COG COK COL COM CPV CRI CUB CUW CXR CYM CYP CZE DEU DJI DMA DNK
DOM DZA ECU EGY ERI ESH ESP EST ETH FIN FJI FLK FRA FRO FSM GAB GBR GEO GGY GHA GIB
GIN GLP GMB GNB GNQ GRC GRD GRL GTM GUF GUM GUY HKG HMD HND HRV HTI HUN IDN IMN IND
IOT IRL IRN IRQ ISL ISR ITA JAM JEY JOR JPN KAZ KEN KGZ KHM KIR KNA KOR KWT LAO LBN
LBR LBY LCA LIE LKA LSO LTU LUX LVA MAC MAF MAR MCO MDA MDG MDV MEX MHL MKD MLI MLT
MMR MNE MNG MNP MOZ MRT MSR MTQ MUS MWI MYS MYT NAM NCL NER NFK NGA NIC NIU NLD NOR
NPL NRU NZL OMN PAK PAN PCN PER PHL PLW PNG POL PRI PRK PRT PRY PSE PYF QAT REU ROU
RUS RWA SAU SDN SEN SGP SGS SHN SJM SLB SLE SLV SMR SOM SPM SRB SSD STP SUR SVK SVN
SWE SWZ SXM SYC SYR TCA TCD TGO THA TJK TKL TKM TLS TON TTO TUN TUR TUV TWN TZA UGA
UKR UMI URY USA UZB VAT VCT VEN VGB VIR VNM VUT WLF WSM YEM ZAF ZMB ZWE
"""
#: Codes Doc 9303 Part 3 adds: Germany's D, the EU, British nationals, Kosovo, the UN,
#: other international organisations, and the stateless / refugee codes.
_ICAO_EXTRA: Final = """
D EUE GBD GBN GBO GBP GBS RKS UNA UNK UNO XBA XCC XCE XCO XDC XEC XES XIM XMP XOM XPO
XSC XXA XXB XXC XXX
"""
COUNTRY_CODES: Final = frozenset((_ISO3166 + _ICAO_EXTRA).split())


class MrzFormat(enum.StrEnum):
    TD1 = "TD1"  # 3 lines of 30: ID cards
    TD2 = "TD2"  # 2 lines of 36: older ID cards, some permits
    TD3 = "TD3"  # 2 lines of 44: passports


_LAYOUTS: Final = {
    (3, 30): MrzFormat.TD1,
    (2, 36): MrzFormat.TD2,
    (2, 44): MrzFormat.TD3,
}


class MrzReason(enum.StrEnum):
    """Why a block was refused; ``MrzRejection.fields`` names the fields concerned."""

    BAD_LAYOUT = "bad_layout"  # not 3x30, 2x36 or 2x44 after trimming
    BAD_CHARACTER = "bad_character"  # a character outside A-Z 0-9 <
    UNSUPPORTED_DOCUMENT = "unsupported_document"  # visas (V...): MRV layouts differ
    BAD_FIELD = "bad_field"  # sex, nationality shape, or a date not YYMMDD / a calendar date
    BAD_CHECK_DIGIT = "bad_check_digit"  # one or more check digits fail


@dataclass(frozen=True, slots=True, kw_only=True)
class MrzCheck:
    """One check digit: its name, the character printed, and whether it holds."""

    name: str
    printed: str
    ok: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Mrz:
    """The decoded fields of an MRZ.

    Field text has fillers removed (``<`` inside names and optional data becomes a
    space).  ``sex`` is ``M``, ``F`` or ``X`` (unspecified, printed ``<`` or ``X``).
    ``birth_date``, ``expiry_date``, ``age`` and ``expired`` are set only when the parser
    was given ``at`` (and the printed date is complete).  A value returned by
    :func:`parse_mrz` always has every check ok; one with failures is carried only by
    :attr:`MrzRejection.document`.
    """

    format: MrzFormat
    document_code: str
    issuing_state: str
    document_number: str
    surname: str
    given_names: str
    nationality: str
    birth_date_raw: str
    sex: Literal["M", "F", "X"]
    expiry_date_raw: str
    optional_data: str
    optional_data_2: str
    checks: tuple[MrzCheck, ...]
    birth_date: date | None = None
    expiry_date: date | None = None
    age: int | None = None
    expired: bool | None = None

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def failed_checks(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.checks if not c.ok)

    @property
    def codes_known(self) -> bool:
        """Both the issuing state and the nationality are known ISO/ICAO codes."""
        return self.issuing_state in COUNTRY_CODES and self.nationality in COUNTRY_CODES

    def check(self, name: str) -> MrzCheck:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)


@dataclass(frozen=True, slots=True, kw_only=True)
class MrzRejection:
    """A block that is not a valid MRZ; ``document`` holds the decoded fields when only
    check digits failed (for diagnostics, never for admission)."""

    reason: MrzReason
    format: MrzFormat | None = None
    fields: tuple[str, ...] = ()
    document: Mrz | None = None

    @property
    def ok(self) -> Literal[False]:
        return False


def mrz_check_digit(field: str) -> int | None:
    """The 7-3-1 check digit of ``field``, or None if it is empty or has a character
    outside ``0-9 A-Z <``."""
    if not field:
        return None
    total = 0
    for i, ch in enumerate(field):
        value = _VALUES.get(ch)
        if value is None:
            return None
        total += value * _WEIGHTS[i % 3]
    return total % 10


def _check(name: str, data: str, printed: str, *, empty_may_be_filler: bool = False) -> MrzCheck:
    expected = mrz_check_digit(data)
    ok = expected is not None and printed == str(expected)
    if empty_may_be_filler and printed == "<" and set(data) == {"<"}:
        ok = True
    return MrzCheck(name=name, printed=printed, ok=ok)


def _text(field: str) -> str:
    """Field text with fillers: ``<`` separators become single spaces, ends trimmed."""
    return " ".join(part for part in field.split("<") if part)


def _names(field: str) -> tuple[str, str]:
    surname, sep, given = field.partition("<<")
    if not sep:
        return _text(surname), ""
    return _text(surname), _text(given)


def _lines(block: str | Sequence[str]) -> list[str]:
    raw = block.splitlines() if isinstance(block, str) else [str(x) for x in block]
    lines = [line.strip() for line in raw if line.strip()]
    if len(lines) == 1:
        one = lines[0]
        for count, width in _LAYOUTS:
            if len(one) == count * width:
                return [one[i * width : (i + 1) * width] for i in range(count)]
    return lines


def _nationality_ok(raw: str) -> bool:
    """Three letters, or Germany's one-letter code ``D`` with fillers (Doc 9303 Part 3)."""
    return (len(raw) == 3 and raw.isalpha()) or raw == "D<<"


def _date_ok(raw: str) -> bool:
    """YYMMDD digits forming a date in 19YY or 20YY, or with ``<`` for unknown parts."""
    if "<" in raw:
        return all(ch.isdigit() or ch == "<" for ch in raw)
    if not raw.isdigit():
        return False
    yy, mm, dd = int(raw[:2]), int(raw[2:4]), int(raw[4:])
    for century in (2000, 1900):
        try:
            date(century + yy, mm, dd)
        except ValueError:
            continue
        return True
    return False


def _resolve(raw: str, *, at: date, birth: bool) -> date | None:
    if not raw.isdigit():
        return None
    yy, mm, dd = int(raw[:2]), int(raw[2:4]), int(raw[4:])
    candidates: list[date] = []
    for century in (1900, 2000, 2100):
        try:
            candidates.append(date(century + yy, mm, dd))
        except ValueError:
            continue
    if birth:
        past = [d for d in candidates if d <= at]
        return past[-1] if past else None
    near = [d for d in candidates if abs(d.year - at.year) <= 50]
    return near[0] if near else None


@dataclass(frozen=True, slots=True)
class _Slices:
    """The raw fields of one MRZ, cut by its layout."""

    number: str
    number_cd: str
    optional: str
    optional_2: str
    birth: str
    birth_cd: str
    sex: str
    expiry: str
    expiry_cd: str
    nationality: str
    personal_cd: str | None  # TD3 only
    composite: str
    composite_cd: str
    names: str


def _slice(fmt: MrzFormat, lines: list[str]) -> _Slices:
    if fmt is MrzFormat.TD1:
        l1, l2, l3 = lines
        return _Slices(
            number=l1[5:14],
            number_cd=l1[14],
            optional=l1[15:30],
            optional_2=l2[18:29],
            birth=l2[0:6],
            birth_cd=l2[6],
            sex=l2[7],
            expiry=l2[8:14],
            expiry_cd=l2[14],
            nationality=l2[15:18],
            personal_cd=None,
            composite=l1[5:30] + l2[0:7] + l2[8:15] + l2[18:29],
            composite_cd=l2[29],
            names=l3,
        )
    l1, l2 = lines
    width = len(l1)
    return _Slices(
        number=l2[0:9],
        number_cd=l2[9],
        optional=l2[28 : width - 1] if fmt is MrzFormat.TD2 else l2[28:42],
        optional_2="",
        birth=l2[13:19],
        birth_cd=l2[19],
        sex=l2[20],
        expiry=l2[21:27],
        expiry_cd=l2[27],
        nationality=l2[10:13],
        personal_cd=l2[42] if fmt is MrzFormat.TD3 else None,
        composite=l2[0:10] + l2[13:20] + l2[21 : width - 1],
        composite_cd=l2[width - 1],
        names=l1[5:width],
    )


def _number_check(fmt: MrzFormat, raw: _Slices) -> tuple[str, MrzCheck]:
    """The full document number and its check (long TD1/TD2 numbers overflow)."""
    if fmt is MrzFormat.TD3 or raw.number_cd != "<" or raw.optional[:1] in ("", "<"):
        return raw.number, _check("document_number", raw.number, raw.number_cd)
    overflow = raw.optional.split("<", 1)[0]
    number, printed = raw.number + overflow[:-1], overflow[-1]
    check = _check("document_number", number, printed)
    if not check.ok:  # the reading that keeps the '<' of the check-digit position
        check = _check("document_number", raw.number + "<" + overflow[:-1], printed)
    return number, check


def _too_big(block: str | Sequence[str]) -> bool:
    if isinstance(block, str):
        return len(block) > _MAX_INPUT
    return len(block) > 8 or sum(len(str(x)) for x in block) > _MAX_INPUT


def parse_mrz(block: str | Sequence[str], *, at: date | None = None) -> Mrz | MrzRejection:
    """Parse an MRZ block (TD1, TD2 or TD3) and verify all its check digits."""
    if _too_big(block):
        return MrzRejection(reason=MrzReason.BAD_LAYOUT)
    lines = _lines(block)
    widths = {len(line) for line in lines}
    fmt = _LAYOUTS.get((len(lines), widths.pop())) if len(widths) == 1 else None
    if fmt is None:
        return MrzRejection(reason=MrzReason.BAD_LAYOUT)
    if any(ch not in _VALUES for line in lines for ch in line):
        return MrzRejection(reason=MrzReason.BAD_CHARACTER, format=fmt)
    if not lines[0][0].isalpha():
        return MrzRejection(reason=MrzReason.BAD_FIELD, format=fmt, fields=("document_code",))
    if lines[0][0] == "V":
        return MrzRejection(reason=MrzReason.UNSUPPORTED_DOCUMENT, format=fmt)

    raw = _slice(fmt, lines)
    bad = tuple(
        name
        for name, ok in (
            ("sex", raw.sex in "MFX<"),
            ("birth_date", _date_ok(raw.birth)),
            ("expiry_date", _date_ok(raw.expiry)),
            ("nationality", _nationality_ok(raw.nationality)),
        )
        if not ok
    )
    if bad:
        return MrzRejection(reason=MrzReason.BAD_FIELD, format=fmt, fields=bad)

    number, number_check = _number_check(fmt, raw)
    checks = [
        number_check,
        _check("birth_date", raw.birth, raw.birth_cd),
        _check("expiry_date", raw.expiry, raw.expiry_cd),
    ]
    if raw.personal_cd is not None:
        checks.append(
            _check("personal_number", raw.optional, raw.personal_cd, empty_may_be_filler=True)
        )
    checks.append(_check("composite", raw.composite, raw.composite_cd))

    surname, given = _names(raw.names)
    birth_date = expiry_date = None
    if at is not None:
        birth_date = _resolve(raw.birth, at=at, birth=True)
        expiry_date = _resolve(raw.expiry, at=at, birth=False)
    document = Mrz(
        format=fmt,
        document_code=_text(lines[0][0:2]),
        issuing_state=_text(lines[0][2:5]),
        document_number=number.replace("<", ""),
        surname=surname,
        given_names=given,
        nationality=_text(raw.nationality),
        birth_date_raw=raw.birth,
        sex="M" if raw.sex == "M" else "F" if raw.sex == "F" else "X",
        expiry_date_raw=raw.expiry,
        optional_data=_text(raw.optional),
        optional_data_2=_text(raw.optional_2),
        checks=tuple(checks),
        birth_date=birth_date,
        expiry_date=expiry_date,
        age=None if birth_date is None or at is None else age_at(birth_date, at),
        expired=None if expiry_date is None or at is None else expiry_date < at,
    )
    if not document.ok:
        return MrzRejection(
            reason=MrzReason.BAD_CHECK_DIGIT,
            format=fmt,
            fields=document.failed_checks,
            document=document,
        )
    return document
