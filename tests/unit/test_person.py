"""Unit tests of suishen.protocol.person: person keys and display masking (DESIGN §4)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from suishen.protocol.person import (
    _canonical_steps,
    _mask_words,
    canonical_identity,
    mask_name,
    mask_number,
    person_key,
)

PEPPER = b"deployment-pepper-0123456789"


def test_person_key_is_hmac_sha256_of_the_canonical_identity() -> None:
    """The key equals an independently computed HMAC-SHA256 in lower-case hex."""
    want = hmac.new(PEPPER, b"RIC:11010519491231002X", hashlib.sha256).hexdigest()
    assert person_key(PEPPER, "RIC", "11010519491231002X") == want
    assert len(want) == 64


@pytest.mark.parametrize(
    ("args", "canonical"),
    [
        (("RIC", "11010519491231002X"), "RIC:11010519491231002X"),
        (("ric", " 11010519491231002x "), "RIC:11010519491231002X"),
        (("RIC", "610104620927690"), "RIC:610104196209276908"),
        (("PP", "L898902C3", "UTO"), "PP:UTO:L898902C3"),
        (("PP", "l898902c3<<", "uto"), "PP:UTO:L898902C3"),
        (("PP", "C01X0006H", "D<<"), "PP:DEU:C01X0006H"),
        (("HMT", "810000199408230021"), "HMT:810000199408230021"),
        (("FPR", "931840198507040037"), "FPR:931840198507040037"),
    ],
)
def test_canonical_identity_forms(args: tuple[str, ...], canonical: str) -> None:
    """RIC/PP per DESIGN §4, HMT/FPR by number alone; case, fillers and legacy normalised."""
    assert canonical_identity(*args) == canonical


def test_same_person_same_key_across_card_generations() -> None:
    """A legacy 15-digit number and its 18-digit form give one person key."""
    assert person_key(PEPPER, "RIC", "610104620927690") == person_key(
        PEPPER, "RIC", "610104196209276908"
    )


def test_key_depends_on_pepper_type_and_nationality() -> None:
    """Changing the pepper, the document type or the nationality changes the key."""
    base = person_key(PEPPER, "PP", "E59659321", "CHN")
    assert person_key(PEPPER + b"!", "PP", "E59659321", "CHN") != base
    assert person_key(PEPPER, "PP", "E59659321", "TWN") != base
    assert person_key(PEPPER, "FPR", "E59659321") != base


@pytest.mark.parametrize(
    "args",
    [
        ("XX", "1"),
        ("RIC", "  "),
        ("RIC", "1 2"),
        ("PP", "E1"),
        ("PP", "E1", "C1N"),
        ("PP", "E1", ""),
    ],
)
def test_canonical_identity_refuses_what_names_no_one(args: tuple[str, ...]) -> None:
    """Unknown types, empty numbers and passports without a nationality are contract errors."""
    with pytest.raises(ValueError, match=r"identity|nationality|number"):
        canonical_identity(*args)


def test_short_pepper_is_refused() -> None:
    """A pepper under 16 bytes is a configuration error."""
    with pytest.raises(ValueError, match="16 bytes"):
        person_key(b"short", "RIC", "11010519491231002X")


@pytest.mark.parametrize(
    ("name", "masked"),
    [
        ("张三明", "张*明"),
        ("张三", "张*"),
        ("张", "*"),
        ("欧阳娜娜", "欧**娜"),
        (" 张三明 ", "张*明"),
        ("买买提·艾力", "买**·艾*"),
        ("ANNA MARIA", "A*** M****"),
        ("ERIKSSON", "E*******"),
        ("Ulrike Katia E", "U***** K**** E"),
        ("A", "*"),
        ("", ""),
    ],
)
def test_mask_name(name: str, masked: str) -> None:
    """DESIGN §4's 张*明, and the documented rules for 2-char, 1-char and Latin names."""
    assert mask_name(name) == masked


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("310101199001011234", "310***********1234"),
        ("11010519491231002X", "110***********002X"),
        ("610104620927690", "610********7690"),
        ("D23145890734", "D********734"),
        ("E59659321", "E*****321"),
        ("1234567", "*****67"),
        ("1234", "**34"),
        ("123", "***"),
        ("", ""),
    ],
)
def test_mask_number(number: str, masked: str) -> None:
    """First 3 and last 4 for long numbers; fewer for short ones; same length always."""
    assert mask_number(number) == masked


@given(st.text(st.sampled_from(["张", "三", "A", "b", " ", "·", "-", ".", ",", "\t", "é", "<"])))
def test_one_word_shortcut_masks_as_the_general_case(name: str) -> None:
    """mask_name's one-word shortcut (no split) gives what the word-by-word path gives."""
    assert mask_name(name) == _mask_words(name.strip())


_KINDS = st.sampled_from(["RIC", "PP", "HMT", "FPR", "ric", " PP", "XX", "pp", ""])
_NUMBERS = st.one_of(
    st.text(st.sampled_from("0123456789Xx"), min_size=14, max_size=19),
    st.text(st.sampled_from("AZaz09<  \t٣Ⅻé"), max_size=20),
)
_NATIONS = st.one_of(
    st.none(), st.sampled_from(["CHN", "uto", "D", "D<<", " CHN", "ÄBC", "AB", "ABCD", "A1C", ""])
)


def _outcome(function: Callable[..., str], *args: Any) -> str | type[ValueError]:
    """What a call gives: its text, or ValueError when it refuses the input."""
    try:
        return function(*args)
    except ValueError:
        return ValueError


@given(_KINDS, _NUMBERS, _NATIONS)
def test_canonical_shortcut_equals_the_general_steps(idt: str, idn: str, nat: str | None) -> None:
    """canonical_identity's shortcut for a clean ASCII number gives what the step-by-step
    normalisation gives, and refuses what it refuses, for any kind, number and nationality."""
    assert _outcome(canonical_identity, idt, idn, nat) == _outcome(_canonical_steps, idt, idn, nat)


@given(_KINDS, _NUMBERS, _NATIONS)
def test_person_key_is_the_one_shot_hmac_of_any_identity(
    idt: str, idn: str, nat: str | None
) -> None:
    """person_key (its HMAC keyed once per pepper and copied per key) gives the one-shot
    HMAC-SHA256 of the canonical identity for any input, and refuses what that refuses; a
    second pepper gets its own key."""

    def one_shot(pepper: bytes, idt: str, idn: str, nat: str | None) -> str:
        message = canonical_identity(idt, idn, nat).encode("utf-8")
        return hmac.digest(pepper, message, "sha256").hex()

    for pepper in (PEPPER, PEPPER[::-1]):
        assert _outcome(person_key, pepper, idt, idn, nat) == _outcome(
            one_shot, pepper, idt, idn, nat
        )


def test_person_key_refuses_a_short_pepper_every_time() -> None:
    """A short pepper is refused on every call, not only the first (a refusal is not cached)."""
    for _ in range(2):
        with pytest.raises(ValueError, match="pepper"):
            person_key(b"short", "RIC", "11010519491231002X")
