"""Subject builders: what a verified code, an ID number, an MRZ or a card tells site policy.

Each builder turns a real parsed document (codes signed and verified here, ID numbers with
their real check digits, ICAO MRZ specimens) into a Subject: the person key, the derived
flags (nationality, minor, status) and, for codes, the code id and expiry.
"""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest

from suishen.drivers.base import RawScan, ScanKind
from suishen.gateway.lists import Lists
from suishen.gateway.pipeline import ScanPipeline
from suishen.gateway.policy import (
    LaneInfo,
    SiteRules,
    decide,
    subject_from_card,
    subject_from_cnid,
    subject_from_code,
    subject_from_mrz,
)
from suishen.gateway.records import AlertKind, Direction, ScanFormat, SiteKind, Verdict
from suishen.gateway.state import SiteState
from suishen.protocol.codes import (
    CLAIM_CTI,
    CLAIM_EXP,
    CLAIM_HCERT,
    CLAIM_IAT,
    CLAIM_ISS,
    HC1,
    VerifiedCode,
    VerifyOptions,
    encode_code,
    verify,
)
from suishen.protocol.cose import PrivateKey, kid_of, spki_der
from suishen.protocol.identity import CnidNumber, Mrz, parse_cnid, parse_mrz
from suishen.protocol.identity.cnid import cnid_check_digit
from suishen.protocol.person import person_key
from suishen.protocol.reasons import Reason
from suishen.protocol.trust import TrustList, trusted_key_from_public_key
from tests.conftest import NOW

PEPPER = b"p" * 32
TODAY = dt.date(2026, 9, 21)
SPECIMEN_TD3 = [  # ICAO 9303 specimen: UTO passport L898902C3, born 1974-08-12
    "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<",
    "L898902C36UTO7408122F1204159ZE184226B<<<<<10",
]
DESK = LaneInfo(site_id="s1", kind=SiteKind.HOTEL, lane_id="D1", direction=Direction.CHECKIN)
GERMAN_TD3 = [  # a German passport: nationality printed as ICAO's one-letter "D<<"
    "P<D<<MUSTERMANN<<ERIKA<<<<<<<<<<<<<<<<<<<<<<",
    "C01X0006H1D<<6408125F1710319<<<<<<<<<<<<<<<0",
]


def id_number(first17: str) -> str:
    """A GB 11643 number with its real MOD 11-2 check character."""
    return first17 + cnid_check_digit(first17)


def cnid(text: str) -> CnidNumber:
    parsed = parse_cnid(text, at=TODAY)
    assert isinstance(parsed, CnidNumber), parsed
    return parsed


def mrz(lines: list[str], at: dt.date | None = TODAY) -> Mrz:
    parsed = parse_mrz(lines, at=at)
    assert isinstance(parsed, Mrz), parsed
    return parsed


def verified(text: str, trust: TrustList) -> VerifiedCode:
    code = verify(text, trust, NOW)
    assert isinstance(code, VerifiedCode), code
    return code


# --------------------------------------------------------------------------- SSC1 codes


def test_ssc1_subject_carries_code_id_expiry_and_format(trust, make_code):
    """An SSC1 subject is format SSC1 and carries the code's id (hex) and its expiry, which
    replay memory and the journal use."""
    code = verified(make_code(iat=NOW - 10, ttl_s=120), trust)
    subject = subject_from_code(code, pepper=PEPPER, today=TODAY)
    assert subject.format is ScanFormat.SSC1
    assert code.cti is not None and subject.cti == code.cti.hex()
    assert subject.exp == NOW + 110
    assert subject.room is None


def test_ssc1_passport_code_is_keyed_with_its_nationality(trust, make_code):
    """A code naming a passport is keyed PP:<nationality>:<number>, so the same passport
    number of two countries gives two people, and the app code and the passport's MRZ agree."""
    code = verified(make_code(idt="PP", idn="C01X0006H", nat="DEU", st="G"), trust)
    subject = subject_from_code(code, pepper=PEPPER, today=TODAY)
    assert subject.person_key == person_key(PEPPER, "PP", "C01X0006H", "DEU")
    assert subject.person_key != person_key(PEPPER, "PP", "C01X0006H", "AUT")
    by_mrz = subject_from_mrz(mrz(GERMAN_TD3), pepper=PEPPER, today=TODAY)
    assert (by_mrz.person_key, by_mrz.nationality) == (subject.person_key, "DEU")


def test_ssc1_code_with_an_impossible_birth_date_has_unknown_minor_flag(trust, make_code):
    """A code whose dob is shaped YYYY-MM-DD but is no calendar date names someone of unknown
    age: minor is None (not a crash, not a guess)."""
    code = verified(make_code(dob="2015-02-30"), trust)
    subject = subject_from_code(code, pepper=PEPPER, today=TODAY)
    assert subject.minor is None
    assert subject.person_key == person_key(PEPPER, "RIC", "11010519491231002X")


# --------------------------------------------------------------------------- HC1 codes


@pytest.fixture
def hc1(issuer_key: PrivateKey):
    """Sign and verify an EU DCC (HC1) code with the given DCC map and code id."""
    kid = kid_of(spki_der(issuer_key.public_key()))
    trust = TrustList(
        [trusted_key_from_public_key(issuer_key.public_key(), issuer="DE", formats=[HC1])]
    )

    def make(dcc: dict[str, object], *, cti: bytes | None = None) -> VerifiedCode:
        claims: dict[int, object] = {
            CLAIM_ISS: "DE",
            CLAIM_IAT: NOW - 3600,
            CLAIM_EXP: NOW + 86400,
            CLAIM_HCERT: {1: {"ver": "1.3.0", **dcc}},
        }
        if cti is not None:
            claims[CLAIM_CTI] = cti
        return verified(encode_code(HC1, claims, issuer_key, kid), trust)

    return make


def test_hc1_subject_has_no_person_key_but_its_age_code_id_and_expiry(hc1):
    """An HC1 subject is format HC1 with no person key (the DCC has no document number);
    its birth date still gives the minor flag, and its code id and expiry are carried."""
    code = hc1({"dob": "2015-06-01", "nam": {"fnt": "MUSTERMANN", "gnt": "ERIKA"}}, cti=b"\x01" * 8)
    subject = subject_from_code(code, pepper=PEPPER, today=TODAY)
    assert subject.format is ScanFormat.HC1
    assert subject.person_key is None
    assert (subject.minor, subject.nationality, subject.status) == (True, None, None)
    assert (subject.cti, subject.exp) == ("01" * 8, NOW + 86400)
    adult = hc1({"dob": "1964-08-12"})
    assert subject_from_code(adult, pepper=PEPPER, today=TODAY).minor is False


def test_hc1_code_without_code_id_or_birth_date(hc1):
    """A DCC need not carry a cti or a full birth date ("1964", "1964-08" or none): the
    subject then has no code id and an unknown minor flag, and building it never raises."""
    for dcc in ({}, {"dob": "1964"}, {"dob": "1964-08"}, {"dob": 1964}):
        subject = subject_from_code(hc1(dcc), pepper=PEPPER, today=TODAY)
        assert (subject.format, subject.cti, subject.minor) == (ScanFormat.HC1, None, None)


# --------------------------------------------------------------------------- ID numbers


@pytest.mark.parametrize(
    ("first17", "kind", "nationality"),
    [
        ("11010519491231002", "RIC", "CHN"),
        ("81000019940823002", "HMT", "HKG"),
        ("82000019940823002", "HMT", "MAC"),
        ("83000019940823002", "HMT", "TWN"),
        ("93184019800101001", "FPR", None),  # numeric nationality 840, not mapped
    ],
)
def test_id_number_subject_nationality_and_key(first17, kind, nationality):
    """An ID number gives format CNID, the nationality its family implies (resident ID: CHN;
    HK / Macao / Taiwan permits: HKG / MAC / TWN; a permanent-residence number: unknown), and
    the key of its own family, the same as an app code naming that document."""
    number = id_number(first17)
    subject = subject_from_cnid(cnid(number), pepper=PEPPER, today=TODAY)
    assert subject.format is ScanFormat.CNID
    assert subject.nationality == nationality
    assert subject.person_key == person_key(PEPPER, kind, number)
    assert (subject.minor, subject.status, subject.cti) == (False, None, None)


def test_id_number_of_a_child_is_a_minor():
    """A resident ID whose birth date is under 16 years before today names a minor."""
    subject = subject_from_cnid(cnid(id_number("11010520150601123")), pepper=PEPPER, today=TODAY)
    assert subject.minor is True


def test_hmt_permit_holder_checking_in_is_a_foreign_guest_report():
    """A Hong Kong permit holder checking in at a hotel is reported (nationality HKG is not
    domestic), while a resident ID holder is not."""
    lane = LaneInfo(site_id="s1", kind=SiteKind.HOTEL, lane_id="D1", direction=Direction.CHECKIN)
    kinds = []
    for first17 in ("81000019940823002", "11010519491231002"):
        subject = subject_from_cnid(cnid(id_number(first17)), pepper=PEPPER, today=TODAY)
        state = SiteState(site_id="s1", kind=SiteKind.HOTEL)
        decision = decide(
            subject, lane=lane, rules=SiteRules(), state=state, lists=Lists(), now=NOW
        )
        kinds.append(tuple(a.kind for a in decision.alerts))
    assert kinds == [(AlertKind.FOREIGN_GUEST,), ()]


# --------------------------------------------------------------------------- MRZ


def test_mrz_subject_is_keyed_as_a_passport():
    """An MRZ gives format MRZ, the holder's nationality and the PP key of its number."""
    subject = subject_from_mrz(mrz(SPECIMEN_TD3), pepper=PEPPER, today=TODAY)
    assert subject.format is ScanFormat.MRZ
    assert subject.person_key == person_key(PEPPER, "PP", "L898902C3", "UTO")
    assert (subject.nationality, subject.minor, subject.status) == ("UTO", False, None)


def test_mrz_german_one_letter_code_becomes_deu():
    """Germany's MRZ nationality "D" becomes ISO "DEU", so the foreign-guest report and the
    domestic list see the ISO code."""
    subject = subject_from_mrz(mrz(GERMAN_TD3), pepper=PEPPER, today=TODAY)
    assert subject.nationality == "DEU"
    assert subject.person_key == person_key(PEPPER, "PP", "C01X0006H", "DEU")


def test_mrz_minor_flag_follows_birth_date_and_is_unknown_without_one():
    """The specimen holder (born 1974-08-12) is a minor in 1985 and not in 1990; an MRZ
    parsed without a date has no resolved birth date, so its minor flag is unknown."""
    doc = mrz(SPECIMEN_TD3, at=dt.date(1985, 1, 1))
    assert subject_from_mrz(doc, pepper=PEPPER, today=dt.date(1985, 1, 1)).minor is True
    assert subject_from_mrz(doc, pepper=PEPPER, today=dt.date(1990, 8, 12)).minor is False
    undated = mrz(SPECIMEN_TD3, at=None)
    assert subject_from_mrz(undated, pepper=PEPPER, today=TODAY).minor is None


# --------------------------------------------------------------------------- cards


def test_card_subject_names_the_roster_worker_or_nobody():
    """A card resolved by the roster gives that worker's key; an unknown card names nobody.
    Either way it is format CARD with no flags."""
    worker = hashlib.sha256(b"worker").hexdigest()
    known, unknown = subject_from_card(worker), subject_from_card(None)
    assert (known.format, known.person_key) == (ScanFormat.CARD, worker)
    assert (unknown.format, unknown.person_key) == (ScanFormat.CARD, None)
    assert (known.nationality, known.minor, known.status, known.cti) == (None, None, None, None)


def test_unknown_card_is_denied_where_registration_applies():
    """At a construction site an unknown card names nobody, so it is not_registered."""
    lane = LaneInfo(site_id="s1", kind=SiteKind.CONSTRUCTION, lane_id="L1", direction=Direction.IN)
    state = SiteState(site_id="s1", kind=SiteKind.CONSTRUCTION)
    decision = decide(
        subject_from_card(None), lane=lane, rules=SiteRules(), state=state, lists=Lists(), now=NOW
    )
    assert (decision.verdict, decision.reason) == (Verdict.DENY, Reason.NOT_REGISTERED)


@pytest.mark.parametrize("nationality", ["<<<", "DE<", "1<<", "<DE"])
def test_mrz_without_a_nationality_code_is_a_rejection_not_a_crash(nationality):
    """Regression: a desk MRZ whose check digits hold but whose nationality field is not a
    code (blank, two letters, digits; Doc 9303 allows three letters or Germany's "D<<")
    cannot be keyed as a passport. It used to raise ValueError out of the pipeline (the lane
    would fail closed as internal_error); it is now journalled as a malformed document."""
    line2 = GERMAN_TD3[1][:10] + nationality + GERMAN_TD3[1][13:]  # outside every check digit
    pipeline = ScanPipeline(
        lane=DESK,
        rules=SiteRules(),
        state=SiteState(site_id="s1", kind=SiteKind.HOTEL),
        lists=Lists(),
        pepper=PEPPER,
        verify_options=VerifyOptions(),
    )
    text = f"{GERMAN_TD3[0]}\n{line2}"
    record = pipeline.decide(
        RawScan(device_id="doc1", kind=ScanKind.QR, text=text, received_mono=0.0, received_at=NOW),
        NOW,
    )
    assert (record.decision.verdict, record.decision.reason) == (
        Verdict.DENY,
        Reason.MALFORMED_CLAIMS,
    )
    assert (record.format, record.person, record.decision.alerts) == (ScanFormat.MRZ, None, ())
    good = f"{GERMAN_TD3[0]}\n{GERMAN_TD3[1]}"
    accepted = pipeline.decide(
        RawScan(device_id="doc1", kind=ScanKind.QR, text=good, received_mono=0.0, received_at=NOW),
        NOW,
    )
    assert accepted.decision.verdict is Verdict.ALLOW


def test_the_lanes_keys_every_document_as_person_key_does(trust, make_code):
    """The pipeline keys with the pepper's HMAC keyed once (person_key's cache); the people it names
    through a code (resident ID, passport), an ID number and an MRZ carry exactly
    person_key(pepper, ...), so the keys join the hub's and the lists' as before."""
    pipeline = ScanPipeline(
        lane=DESK,
        rules=SiteRules(),
        state=SiteState(site_id="s1", kind=SiteKind.HOTEL),
        lists=Lists(trust=trust),
        pepper=PEPPER,
        verify_options=VerifyOptions(),
    )

    def key_of(text: str) -> str | None:
        raw = RawScan(
            device_id="d", kind=ScanKind.QR, text=text, received_mono=0.0, received_at=NOW
        )
        record = pipeline.decide(raw, NOW)
        return None if record.person is None else record.person.person_key

    number = id_number("11010519491231002")
    assert key_of(make_code()) == person_key(PEPPER, "RIC", "11010519491231002X")
    passport = make_code(idt="PP", idn="C01X0006H", nat="DEU")
    assert key_of(passport) == person_key(PEPPER, "PP", "C01X0006H", "DEU")
    assert key_of(number) == person_key(PEPPER, "RIC", number)
    assert key_of("\n".join(SPECIMEN_TD3)) == person_key(PEPPER, "PP", "L898902C3", "UTO")
