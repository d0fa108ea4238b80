"""One scan, from raw read to journal record: classify -> verify -> subject -> policy.

Synchronous and free of I/O: the lane calls `ScanPipeline.decide(raw, now)` and gets the
ScanDecided to journal (its seq is assigned by the journal). What a scan is follows from its
text: `SSC1:`/`HC1:` codes are verified offline; 15/18-character ID numbers and MRZ blocks
come from desk document readers; card numbers from card readers resolve through the roster.
Anything else is a Rejection with a reason code, never an exception.

An ID number or MRZ that fails its check digits is journalled as malformed_claims: the DESIGN
§3 list has no reason of its own for a bad identity document (see the issue note).
"""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import structlog

from suishen.drivers.base import RawScan, ScanKind
from suishen.gateway.lists import Lists
from suishen.gateway.policy import (
    LaneInfo,
    SiteRules,
    Subject,
    decide,
    subject_from_card,
    subject_from_cnid,
    subject_from_code,
    subject_from_mrz,
)
from suishen.gateway.records import Person, ScanDecided, ScanFormat, scan_decided
from suishen.gateway.state import SiteState
from suishen.protocol.codes import Rejection, VerifiedCode, VerifyOptions, verify
from suishen.protocol.identity.cnid import CnidNumber, parse_cnid
from suishen.protocol.identity.mrz import Mrz, parse_mrz
from suishen.protocol.person import mask_name, mask_number
from suishen.protocol.reasons import Reason

_MRZ_LENGTHS = frozenset({60, 72, 88, 90})

log = structlog.get_logger("suishen.gateway.pipeline")


@dataclass(frozen=True, slots=True, kw_only=True)
class Classified:
    """What a raw scan turned out to be, before policy."""

    subject: Subject | Rejection
    person: Person | None
    identity_clear: dict[str, str] | None
    kid: str | None = None


def _reject(reason: Reason, detail: str, fmt: str | None = None) -> Rejection:
    return Rejection(reason=reason, detail=detail, format=fmt)


class ScanPipeline:
    """Turns RawScans of one lane into decided records; shares state and lists with the site."""

    def __init__(
        self,
        *,
        lane: LaneInfo,
        rules: SiteRules,
        state: SiteState,
        lists: Lists,
        pepper: bytes,
        verify_options: VerifyOptions,
        timezone: str = "Asia/Shanghai",
    ) -> None:
        self.lane = lane
        self.rules = rules
        self.state = state
        self.lists = lists
        self._pepper = pepper
        self._options = verify_options
        self._tz = ZoneInfo(timezone)
        self._day: tuple[float, float, dt.date] = (0.0, 0.0, dt.date.min)  # [start, end), date
        self._kids: dict[bytes, str] = {}  # kid -> base64, for the few keys of the trust list

    def today(self, now: float) -> dt.date:
        start, end, day = self._day
        if start <= now < end:  # the usual case: the same local day as the last scan
            return day
        local = dt.datetime.fromtimestamp(now, self._tz)
        day = local.date()
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        # The day's bounds as POSIX seconds (a DST change moves them: computed, not assumed).
        begin = midnight.timestamp()
        after = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), self._tz).timestamp()
        if begin <= now < after:
            self._day = (begin, after, day)
        return day

    def _kid_text(self, kid: bytes) -> str:
        text = self._kids.get(kid)
        if text is None:
            text = base64.b64encode(kid).decode()
            if len(self._kids) < 256:  # kids of trusted keys recur; others are not kept
                self._kids[kid] = text
        return text

    # ------------------------------------------------------------------ classify

    def classify(self, raw: RawScan, now: float) -> Classified:
        if raw.kind is ScanKind.CARD:
            return self._card(raw.text)
        text = raw.text.strip()
        if text.startswith(("SSC1:", "HC1:")):
            return self._code(text, now)
        compact = text.replace("\r", "").replace("\n", "")
        if len(compact) in (15, 18) and compact.isalnum():
            return self._cnid(compact, now)
        if "<" in compact and len(compact) in _MRZ_LENGTHS:
            return self._mrz(text, now)
        rejection = _reject(Reason.MALFORMED_PREFIX, "not a code, ID number or MRZ")
        return Classified(subject=rejection, person=None, identity_clear=None)

    def _code(self, text: str, now: float) -> Classified:
        result = verify(text, self.lists.trust, now, self._options)
        if isinstance(result, Rejection):
            kid = self._kid_text(result.kid) if result.kid else None
            if result.internal:  # a verifier bug, not a bad code: the lane's line is not enough
                log.error("verifier internal error", detail=result.detail, format=result.format)
            return Classified(subject=result, person=None, identity_clear=None, kid=kid)
        subject = subject_from_code(result, pepper=self._pepper, today=self.today(now))
        return Classified(
            subject=subject,
            person=self._person_from_code(result, subject),
            identity_clear=_clear_from_code(result),
            kid=self._kid_text(result.kid),
        )

    def _person_from_code(self, code: VerifiedCode, subject: Subject) -> Person | None:
        ident = code.identity
        if subject.person_key is None or ident is None:
            return None
        return Person(
            person_key=subject.person_key,
            nationality=subject.nationality,
            minor=subject.minor,
            status=subject.status,
            masked_name=mask_name(ident.nm),
            masked_number=mask_number(ident.idn),
        )

    def _cnid(self, text: str, now: float) -> Classified:
        parsed = parse_cnid(text, at=self.today(now))
        if not isinstance(parsed, CnidNumber):
            rejection = _reject(Reason.MALFORMED_CLAIMS, f"ID number: {parsed.reason}", "CNID")
            return Classified(subject=rejection, person=None, identity_clear=None)
        subject = subject_from_cnid(parsed, pepper=self._pepper, today=self.today(now))
        assert subject.person_key is not None
        person = Person(
            person_key=subject.person_key,
            nationality=subject.nationality,
            minor=subject.minor,
            status=None,
            masked_name="",
            masked_number=mask_number(parsed.number),
        )
        clear = {
            "idt": str(parsed.kind),
            "idn": parsed.number,
            "nm": "",
            "dob": parsed.birth_date.isoformat(),
            "nat": subject.nationality or "",
        }
        return Classified(subject=subject, person=person, identity_clear=clear)

    def _mrz(self, text: str, now: float) -> Classified:
        parsed = parse_mrz(text, at=self.today(now))
        if not isinstance(parsed, Mrz):
            rejection = _reject(Reason.MALFORMED_CLAIMS, f"MRZ: {parsed.reason}", "MRZ")
            return Classified(subject=rejection, person=None, identity_clear=None)
        subject = subject_from_mrz(parsed, pepper=self._pepper, today=self.today(now))
        assert subject.person_key is not None
        name = f"{parsed.surname} {parsed.given_names}".strip()
        person = Person(
            person_key=subject.person_key,
            nationality=subject.nationality,
            minor=subject.minor,
            status=None,
            masked_name=mask_name(name) if name else "",
            masked_number=mask_number(parsed.document_number),
        )
        clear = {
            "idt": "PP",
            "idn": parsed.document_number,
            "nm": name,
            "dob": parsed.birth_date.isoformat() if parsed.birth_date else parsed.birth_date_raw,
            "nat": subject.nationality or "",
        }
        return Classified(subject=subject, person=person, identity_clear=clear)

    def _card(self, card: str) -> Classified:
        person_key = self.lists.roster.person_for_card(self.lane.site_id, card)
        subject = subject_from_card(person_key)
        person = None
        if person_key is not None:
            person = Person(
                person_key=person_key,
                nationality=None,
                minor=None,
                status=None,
                masked_name="",
                masked_number=mask_number(card),
            )
        return Classified(subject=subject, person=person, identity_clear=None)

    # ------------------------------------------------------------------ decide

    def decide(self, raw: RawScan, now: float) -> ScanDecided:
        """Classify and decide one scan; pure apart from reading state and lists."""
        classified = self.classify(raw, now)
        subject = classified.subject
        decision = decide(
            subject, lane=self.lane, rules=self.rules, state=self.state, lists=self.lists, now=now
        )
        if isinstance(subject, Rejection):
            fmt = _format_name(subject.format)
            cti = None
        else:
            fmt, cti = subject.format, subject.cti
        return scan_decided(
            ts=now,
            site_id=self.lane.site_id,
            lane_id=self.lane.lane_id,
            direction=self.lane.direction,
            format=fmt,
            decision=decision,
            person=classified.person,
            cti=cti,
            kid=classified.kid,
            zone=self.lane.zone,
            identity_clear=classified.identity_clear,
            received_mono=raw.received_mono,
        )


def _format_name(name: str | None) -> ScanFormat:
    try:
        return ScanFormat(name) if name else ScanFormat.UNKNOWN
    except ValueError:
        return ScanFormat.UNKNOWN


def _clear_from_code(code: VerifiedCode) -> dict[str, str] | None:
    ident = code.identity
    if ident is None:
        return None
    return {"idt": ident.idt, "idn": ident.idn, "nm": ident.nm, "dob": ident.dob, "nat": ident.nat}
