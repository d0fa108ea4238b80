"""Opening sealed identities, audited; a person's own access report (DESIGN §4; issue 11 item 4).

``reveal(con, user, records, reason, case_ref, opener=...)`` opens the identities that gateways
sealed to the hub's X25519 key (protocol/sealing.py; the hub's key: central/keys.py
``load_seal_key(state_dir)``, wrapped once in a ``HubOpener``).  It refuses (BadRequest) without
a non-empty reason AND a case reference, refuses (Forbidden) a user who is not an analyst or an
admin, and writes ONE audit row (who, when, which records, why, which case) in the same
transaction as the read, before anything is returned: a reveal whose audit row does not commit
returns nothing.  ``records`` are scan keys (gateway_id, seq, ts), or a person key: then the
person's most recent sealed scan is opened.  A record that does not exist, holds no sealed
identity (a card), or does not open (another hub key, tampered) comes back with ``opened=False``
and a reason code (``not_found``, ``not_sealed``, ``does_not_open``), and is audited all the
same (the attempt is what the trail must show); so is a person key with no sealed scan kept
(no identities returned).  Nothing opened is logged.

``access_report(con, user, document, reason, case_ref, pepper=...)``: the person's own report
(a verified request; an admin enters the document number): which sites recorded them, on which
days, how many times, from the data still kept.  Admin only, audited with the person key (the
number itself is not stored).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Final

import msgspec
import structlog

from suishen.central.connection import Connection
from suishen.central.errors import BadRequest
from suishen.central.store import audit
from suishen.central.store.watchlist import Document, check_person_key, key_of
from suishen.protocol.sealing import HubOpener, OpenError

MAX_RECORDS: Final = 100
MAX_REASON: Final = 500
MAX_CASE_REF: Final = 128

log = structlog.get_logger("suishen.central.reveal")


class RevealError(BadRequest, ValueError):
    """A reveal or access report asked for without what it needs (400 at a front door)."""


class RecordRef(msgspec.Struct, frozen=True, kw_only=True):
    """One scan: its gateway, journal seq and time (the scans table's key)."""

    gateway_id: str
    seq: int
    ts: dt.datetime


class RevealRequest(msgspec.Struct, frozen=True, kw_only=True):
    """What to open (``records``, or the latest sealed scan of ``person_key``), and why."""

    reason: str
    case_ref: str
    records: list[RecordRef] = []
    person_key: str | None = None


class RevealedIdentity(msgspec.Struct, frozen=True, kw_only=True):
    """One record's identity, or why it was not opened (``error``)."""

    gateway_id: str
    seq: int
    ts: dt.datetime
    opened: bool
    error: str | None = None
    site_id: str | None = None
    person_key: str | None = None
    idt: str | None = None
    idn: str | None = None
    name: str | None = None
    dob: str | None = None
    nat: str | None = None


class RevealResult(msgspec.Struct, frozen=True, kw_only=True):
    """The identities and the audit row that records their opening."""

    audit_id: int
    identities: list[RevealedIdentity]


def check_why(reason: str, case_ref: str) -> tuple[str, str]:
    """The stripped reason and case reference; RevealError unless both are given."""
    reason, case_ref = reason.strip(), case_ref.strip()
    if not reason or not case_ref:
        raise RevealError("a reason and a case reference are both required")
    if len(reason) > MAX_REASON or len(case_ref) > MAX_CASE_REF:
        raise RevealError(f"reason: at most {MAX_REASON}, case_ref: {MAX_CASE_REF} characters")
    return reason, case_ref


_SCAN: Final = """
SELECT s.site_id, s.person_key, s.identity_sealed, e.ephemeral_public
FROM scans s
LEFT JOIN epochs e ON e.gateway_id = s.gateway_id AND e.epoch_id = s.epoch_id
WHERE s.gateway_id = $1 AND s.seq = $2 AND s.ts = $3
"""

_LATEST: Final = """
SELECT gateway_id, seq, ts FROM scans
WHERE person_key = $1 AND identity_sealed IS NOT NULL
ORDER BY ts DESC LIMIT 1
"""


async def _open_one(con: Connection, ref: RecordRef, opener: HubOpener) -> RevealedIdentity:
    row = await con.fetchrow(_SCAN, ref.gateway_id, ref.seq, ref.ts)
    if row is None:
        return RevealedIdentity(
            gateway_id=ref.gateway_id, seq=ref.seq, ts=ref.ts, opened=False, error="not_found"
        )
    unopened = RevealedIdentity(
        gateway_id=ref.gateway_id,
        seq=ref.seq,
        ts=ref.ts,
        opened=False,
        site_id=row["site_id"],
        person_key=row["person_key"],
    )
    if row["identity_sealed"] is None or row["ephemeral_public"] is None:
        return msgspec.structs.replace(unopened, error="not_sealed")
    try:
        identity = opener.open_identity(
            bytes(row["identity_sealed"]),
            ephemeral_public=bytes(row["ephemeral_public"]),
            gateway_id=ref.gateway_id,
            seq=ref.seq,
        )
    except OpenError:
        return msgspec.structs.replace(unopened, error="does_not_open")
    return msgspec.structs.replace(
        unopened,
        opened=True,
        idt=identity.get("idt"),
        idn=identity.get("idn"),
        name=identity.get("nm"),
        dob=identity.get("dob"),
        nat=identity.get("nat"),
    )


async def reveal(
    con: Connection,
    user: audit.Actor,
    records: Sequence[RecordRef] | str,
    reason: str,
    case_ref: str,
    *,
    opener: HubOpener,
) -> RevealResult:
    """Open the sealed identities of ``records`` (or of a person key's latest sealed scan),
    audited; see the module docstring."""
    audit.require_role(user)
    reason, case_ref = check_why(reason, case_ref)
    async with con.transaction():
        if isinstance(records, str):
            latest = await con.fetchrow(_LATEST, check_person_key(records))
            refs = [] if latest is None else [RecordRef(**dict(latest))]
            asked_for: object = {"person_key": records}
        else:
            refs = list(records)
            asked_for = None
        if not isinstance(records, str) and not 1 <= len(refs) <= MAX_RECORDS:
            raise RevealError(f"name 1..{MAX_RECORDS} records (or a person key)")
        identities = [await _open_one(con, ref, opener) for ref in refs]
        keys = sorted({i.person_key for i in identities if i.person_key})
        audit_id = await audit.record(
            con,
            user.username,
            "reveal",
            user_id=user.user_id,
            person_key=records
            if isinstance(records, str)
            else (keys[0] if len(keys) == 1 else None),
            case_ref=case_ref,
            reason=reason,
            records=[
                {
                    "gateway_id": i.gateway_id,
                    "seq": i.seq,
                    "ts": i.ts.isoformat(),
                    "opened": i.opened,
                    "error": i.error,
                }
                for i in identities
            ],
            person_keys=keys,
            asked_for=asked_for,
        )
    log.info(
        "identities_revealed",
        actor=user.username,
        audit_id=audit_id,
        records=len(identities),
        opened=sum(i.opened for i in identities),
    )
    return RevealResult(audit_id=audit_id, identities=identities)


# --------------------------------------------------------------------------- access report


class AccessReportRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A person's verified request: their document, and the request's reason and reference."""

    document: Document
    reason: str
    case_ref: str


class AccessReportRow(msgspec.Struct, frozen=True, kw_only=True):
    """One site that recorded the person on one day."""

    site_id: str
    site_name: str
    day: dt.date
    scans: int
    first_ts: dt.datetime
    last_ts: dt.datetime


class AccessReport(msgspec.Struct, frozen=True, kw_only=True):
    """The report and the audit row that records its making."""

    audit_id: int
    person_key: str
    rows: list[AccessReportRow]


_REPORT: Final = """
SELECT s.site_id, coalesce(si.name, '') AS site_name, (s.ts AT TIME ZONE 'UTC')::date AS day,
       count(*) AS scans, min(s.ts) AS first_ts, max(s.ts) AS last_ts
FROM scans s LEFT JOIN sites si ON si.site_id = s.site_id
WHERE s.person_key = $1
GROUP BY 1, 2, 3
ORDER BY day, s.site_id
"""


async def access_report(
    con: Connection,
    user: audit.Actor,
    request: AccessReportRequest,
    *,
    pepper: bytes | None,
) -> AccessReport:
    """The person's own access report (admin only), audited; see the module docstring."""
    audit.require_role(user, frozenset({"admin"}))
    reason, case_ref = check_why(request.reason, request.case_ref)
    key = key_of(request.document, pepper)
    async with con.transaction():
        rows = [AccessReportRow(**dict(r)) for r in await con.fetch(_REPORT, key)]
        audit_id = await audit.record(
            con, user.username, "access_report", user_id=user.user_id, person_key=key,
            case_ref=case_ref, reason=reason, rows=len(rows),
        )  # fmt: skip
    log.info("access_report_made", actor=user.username, audit_id=audit_id, rows=len(rows))
    return AccessReport(audit_id=audit_id, person_key=key, rows=rows)
