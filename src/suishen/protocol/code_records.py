"""The records of the Suishen code (SSC1) and the EU DCC (HC1): what verify() is given and
what it returns (DESIGN §3). Frozen, slotted, keyword-only; Identity validates itself on
creation. The verifier is in codes.py, which re-exports these names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from suishen.protocol.cose import EDDSA, ES256, PS256
from suishen.protocol.reasons import Reason

SSC1: Final = "SSC1"
HC1: Final = "HC1"
PREFIXES: Final = {SSC1: "SSC1:", HC1: "HC1:"}

CLAIM_ISS: Final = 1
CLAIM_EXP: Final = 4
CLAIM_IAT: Final = 6
CLAIM_CTI: Final = 7
CLAIM_HCERT: Final = -260
CLAIM_SSC: Final = -261

DOCUMENT_TYPES: Final = frozenset({"RIC", "PP", "HMT", "FPR"})
STATUS_COLOURS: Final = frozenset({"G", "Y", "R"})
CTI_LENGTH: Final = 16


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifyOptions:
    """How strict verification is; the gateway builds one from its config."""

    formats: frozenset[str] = frozenset({SSC1, HC1})
    clock_skew_s: int = 60
    max_text_chars: int = 4096
    max_payload_bytes: int = 64 * 1024
    # Longest allowed exp - iat per format; None = no limit (a DCC lives for months).
    max_lifetime_s: Mapping[str, int | None] = field(default_factory=lambda: {SSC1: 300, HC1: None})
    # COSE algorithms each format may use (the EU DCC also allows RSASSA-PSS).
    algorithms: Mapping[str, frozenset[int]] = field(
        default_factory=lambda: {
            SSC1: frozenset({ES256, EDDSA}),
            HC1: frozenset({ES256, EDDSA, PS256}),
        }
    )


DEFAULT_OPTIONS: Final = VerifyOptions()


IDENTITY_FIELDS: Final = ("idt", "idn", "nat", "nm", "dob", "st")


@dataclass(frozen=True, slots=True, kw_only=True)
class Identity:
    """The person a Suishen code names (claim -261)."""

    idt: str  # RIC (PRC resident ID), PP (passport), HMT (HK/Macao/Taiwan permit), FPR
    idn: str
    nat: str  # ISO 3166-1 alpha-3
    nm: str
    dob: str  # YYYY-MM-DD
    st: str  # G, Y or R

    def __post_init__(self) -> None:
        # On every scan's path: one test for the common case, the messages only on failure.
        idt, idn, nat, nm, dob, st = self.idt, self.idn, self.nat, self.nm, self.dob, self.st
        if not (
            type(idt) is str
            and type(idn) is str
            and type(nat) is str
            and type(nm) is str
            and type(dob) is str
            and type(st) is str
        ):
            for name in IDENTITY_FIELDS:
                if type(getattr(self, name)) is not str:
                    raise TypeError(f"{name} must be text")
        if idt not in DOCUMENT_TYPES:
            raise ValueError(f"idt must be one of {sorted(DOCUMENT_TYPES)}")
        if not 1 <= len(idn) <= 32 or not idn.isascii() or not idn.isalnum():
            raise ValueError("idn must be 1..32 ASCII letters or digits")
        if len(nat) != 3 or not (nat.isascii() and nat.isalpha() and nat.isupper()):
            raise ValueError("nat must be three capital letters (ISO 3166-1 alpha-3)")
        if not 1 <= len(nm) <= 64 or not nm.isprintable():
            raise ValueError("nm must be 1..64 printable characters")
        if not (
            len(dob) == 10
            and dob[4] == dob[7] == "-"
            and dob.isascii()
            and (dob[:4] + dob[5:7] + dob[8:]).isdigit()
        ):
            raise ValueError("dob must be YYYY-MM-DD")
        if st not in STATUS_COLOURS:
            raise ValueError("st must be G, Y or R")

    def to_claim(self) -> dict[str, Any]:
        return {
            "v": 1,
            "idt": self.idt,
            "idn": self.idn,
            "nat": self.nat,
            "nm": self.nm,
            "dob": self.dob,
            "st": self.st,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Claims:
    """The CWT claims of a code, typed."""

    iss: str | None
    iat: int | None
    exp: int | None
    cti: bytes | None
    body: Mapping[str, Any]  # the -261 map (SSC1) or the DCC (-260 / 1) map
    identity: Identity | None = None  # SSC1 only


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifiedCode:
    """A code whose signature, issuer and times all check out."""

    format: str
    kid: bytes
    claims: Claims

    @property
    def ok(self) -> bool:
        return True

    @property
    def iss(self) -> str | None:
        return self.claims.iss

    @property
    def iat(self) -> int | None:
        return self.claims.iat

    @property
    def exp(self) -> int | None:
        return self.claims.exp

    @property
    def cti(self) -> bytes | None:
        return self.claims.cti

    @property
    def body(self) -> Mapping[str, Any]:
        return self.claims.body

    @property
    def identity(self) -> Identity | None:
        """SSC1 only; an HC1 code's (weaker) identity, name and birth date, is in body."""
        return self.claims.identity


@dataclass(frozen=True, slots=True, kw_only=True)
class Rejection:
    """Why a code was refused. `internal` marks a rejection that came from an unexpected
    exception inside the verifier (a bug, not a bad code): the caller logs it as an error."""

    reason: Reason
    detail: str
    format: str | None = None
    kid: bytes | None = None
    internal: bool = False

    @property
    def ok(self) -> bool:
        return False
