"""Person keys and display masking (DESIGN §4).

person_key
    ``HMAC-SHA256(pepper, canonical identity)`` as 64 lower-case hex characters; the only
    identity that joins tables.  The pepper is a deployment secret of at least 16 bytes.

    Canonical identities (UTF-8 encoded before hashing)::

        RIC:<18-character resident ID>        e.g. RIC:11010519491231002X
        PP:<nationality>:<passport number>    e.g. PP:UTO:L898902C3
        HMT:<18-character permit number>      e.g. HMT:810000199408230021
        FPR:<18-character permanent-residence number>

    Normalisation: surrounding whitespace and MRZ fillers (``<``) are removed and letters
    upper-cased; a 15-digit legacy resident ID is first converted to its 18-digit form,
    so a person gets one key whichever card generation is scanned; the ICAO code ``D``
    (Germany's MRZ code) becomes ``DEU`` so MRZ scans and app codes agree.  HMT and FPR
    numbers are unique nationwide on their own, so like RIC they carry no nationality.
    Different documents of the same person (a passport and an FPR card) get different
    keys: linking them would need an identity registry, which the gateway does not have.

Masking (for site staff; never reveals more than 7 characters of a number)
    Names are split into words at whitespace and ``· • ・ . , -``.
    A one-word non-Latin name keeps its first and last character (``张三明`` -> ``张*明``,
    ``欧阳娜娜`` -> ``欧**娜``); two characters keep the first (``张三`` -> ``张*``); a
    one-word Latin name keeps its first letter (``SMITH`` -> ``S****``); a one-word name
    of one character is fully masked.  A name of several words (Latin names, or names
    joined by ``·`` such as ``买买提·艾力``) keeps the first character of each word,
    lengths and separators (``ANNA MARIA`` -> ``A*** M****``, ``买买提·艾力`` ->
    ``买**·艾*``); a one-character word there (an initial) is kept.  Lengths are kept
    as on the printed card: they help staff match a face to a list, and a length is not
    an identifier.

    Numbers: length n, revealed characters = first + last:

    ========  =====  ====  =========================================
    n         first  last  e.g.
    ========  =====  ====  =========================================
    >= 14     3      4     ``310***********1234`` (18), 7 of n
    8 - 13    1      3     passports: ``E*****321`` (9)
    4 - 7     0      2     ``*****21``
    < 4       0      0     fully masked
    ========  =====  ====  =========================================

    So at most 7 characters, and never more than half of the number, are shown.
"""

from __future__ import annotations

import functools
import hmac
import re
from typing import Final

from suishen.protocol.identity.cnid import upgrade_15_to_18

__all__ = [
    "IDENTITY_TYPES",
    "MIN_PEPPER_BYTES",
    "canonical_identity",
    "mask_name",
    "mask_number",
    "person_key",
]

IDENTITY_TYPES: Final = frozenset({"RIC", "PP", "HMT", "FPR"})
MIN_PEPPER_BYTES: Final = 16
_NAT: Final = re.compile(r"[A-Z]{3}")
_ICAO_TO_ISO: Final = {"D": "DEU"}
_SEPARATORS: Final = re.compile(r"([\s·•・.,\-]+)")
_LATIN: Final = re.compile(r"[A-Za-z]")
# Kinds whose canonical form is "<kind>:<number>" (no nationality).
_PLAIN_KINDS: Final = frozenset({"RIC", "HMT", "FPR"})


def _clean(text: str) -> str:
    return text.strip().replace("<", "").upper()


def canonical_identity(idt: str, idn: str, nat: str | None = None) -> str:
    """The canonical identity string of DESIGN §4 (see the module docstring).

    Raises ValueError when the arguments cannot name a person (unknown ``idt``, an empty
    number, or a PP identity without a three-letter nationality): callers pass values
    that were already parsed, so this is a broken contract, not bad input.
    """
    # The usual case on every scan's path: an exact kind and a number of ASCII letters and
    # digits (so nothing to strip or drop), not a 15-digit resident ID; the same result as
    # the general steps below (a property test holds them equal).
    if idn.isascii() and idn.isalnum():
        if idt in _PLAIN_KINDS and (len(idn) != 15 or idt != "RIC"):
            return f"{idt}:{idn.upper()}"
        if idt == "PP" and nat is not None and len(nat) == 3 and nat.isascii() and nat.isalpha():
            return f"PP:{nat.upper()}:{idn.upper()}"
    return _canonical_steps(idt, idn, nat)


def _canonical_steps(idt: str, idn: str, nat: str | None) -> str:
    """canonical_identity step by step (any input; its general case)."""
    kind = idt.strip().upper()
    if kind not in IDENTITY_TYPES:
        raise ValueError(f"unknown identity type {idt!r}")
    number = _clean(idn)
    if not number or number.split() != [number]:  # one token, no inner white space
        raise ValueError("an identity number must be a non-empty token")
    if kind == "PP":
        nation = _clean(nat or "")
        nation = _ICAO_TO_ISO.get(nation, nation)
        if not _NAT.fullmatch(nation):
            raise ValueError("a passport identity needs a three-letter nationality")
        return f"PP:{nation}:{number}"
    if kind == "RIC" and len(number) == 15 and number.isascii() and number.isdigit():
        number = upgrade_15_to_18(number)
    return f"{kind}:{number}"


def person_key(pepper: bytes, idt: str, idn: str, nat: str | None = None) -> str:
    """HMAC-SHA256(pepper, canonical identity) as lower-case hex."""
    mac = _keyed(pepper).copy()  # on every scan's path: the HMAC is keyed once per pepper
    mac.update(canonical_identity(idt, idn, nat).encode("utf-8"))
    return mac.hexdigest()


@functools.lru_cache(maxsize=4)
def _keyed(pepper: bytes) -> hmac.HMAC:
    """The HMAC keyed with a pepper, to be copied per key (a process has one or two)."""
    if len(pepper) < MIN_PEPPER_BYTES:
        raise ValueError(f"the pepper must be at least {MIN_PEPPER_BYTES} bytes")
    return hmac.new(pepper, digestmod="sha256")


def _mask_word(word: str) -> str:
    """One word of several: its first character (an initial is kept whole)."""
    if len(word) <= 1:
        return word
    return word[0] + "*" * (len(word) - 1)


def _mask_single(word: str) -> str:
    """A one-word name: first and last character of a non-Latin name of three or more."""
    if len(word) <= 1:
        return "*" * len(word)
    if _LATIN.search(word) or len(word) == 2:
        return word[0] + "*" * (len(word) - 1)
    return word[0] + "*" * (len(word) - 2) + word[-1]


def mask_name(name: str) -> str:
    """The masked display form of a personal name (see the module docstring)."""
    text = name.strip()
    if _SEPARATORS.search(text) is None:  # one word (most Chinese names): no split needed
        return _mask_single(text)
    return _mask_words(text)


def _mask_words(text: str) -> str:
    """mask_name of a stripped text, word by word (any text; mask_name's general case)."""
    parts = _SEPARATORS.split(text)
    words = [p for i, p in enumerate(parts) if i % 2 == 0 and p]
    mask = _mask_single if len(words) <= 1 else _mask_word
    return "".join(p if i % 2 else mask(p) for i, p in enumerate(parts))


def _reveal(length: int) -> tuple[int, int]:
    if length >= 14:
        return 3, 4
    if length >= 8:
        return 1, 3
    if length >= 4:
        return 0, 2
    return 0, 0


def mask_number(number: str) -> str:
    """The masked display form of a document number (see the module docstring)."""
    text = number.strip()
    first, last = _reveal(len(text))
    hidden = len(text) - first - last
    return text[:first] + "*" * hidden + (text[len(text) - last :] if last else "")
