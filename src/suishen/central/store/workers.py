"""A construction site's roster: add a worker, import a CSV, expire a registration (DESIGN §5, §6).

Every change runs in one transaction that bumps the roster bundle's version
(``lists.bump_version``), so the bundle service signs a new roster and the site's gateways fetch
it (the trigger of deploy/sql/0002 wakes their long polls); every change is audited.  The site
must be a construction site in the caller's scope (else NotFound, never confirmed).

A worker is named by an identity document (``id_type`` RIC, HMT, FPR or PP, ``id_number``, and
``nationality`` for a passport), turned into the person key with the deployment pepper, or by
the ``person_key`` itself.  Only masked forms of the name and number are stored (protocol.person).

CSV import (``import_roster``): UTF-8 (a BOM is fine) or GB 18030 (what spreadsheet software
writes in Chinese locales); a header row naming the columns of :data:`COLUMNS` (any order,
unknown ones refused); at most :data:`MAX_ROWS` rows and :data:`MAX_CSV_BYTES` bytes.  Each row
is checked whole before anything is written: a bad row is reported (row number as the
spreadsheet shows it, the header being row 1; the field; a message) and written not at all; the
good rows are written together, with one version bump.

Exceptions::

    RosterInputError (BadRequest, ValueError)    a field of a worker is not acceptable
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import re
from collections.abc import Mapping
from typing import Final

from suishen.central.connection import Connection
from suishen.central.errors import BadRequest, NotFound, PayloadTooLarge
from suishen.central.queries.sitekind import require_site
from suishen.central.scope import Scope
from suishen.central.store import audit
from suishen.central.store.lists import bump_version
from suishen.protocol.identity.cnid import CnidNumber, parse_cnid
from suishen.protocol.person import canonical_identity, mask_name, mask_number, person_key

CONSTRUCTION: Final = "construction"
COLUMNS: Final = (
    "id_type",
    "id_number",
    "nationality",
    "person_key",
    "name",
    "employer",
    "trade",
    "card_number",
    "valid_from",
    "valid_until",
)
MAX_CSV_BYTES: Final = 1 << 20
MAX_ROWS: Final = 5000
MAX_NAME: Final = 64
MAX_EMPLOYER: Final = 128
MAX_TRADE: Final = 64
MAX_CARD: Final = 32
_HEX_KEY: Final = re.compile(r"[0-9a-f]{64}")
_CARD: Final = re.compile(r"[0-9A-Za-z]{1,32}")
_PASSPORT: Final = re.compile(r"[0-9A-Z]{5,20}")
_NATION: Final = re.compile(r"[A-Z]{3}")
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")


class RosterInputError(BadRequest, ValueError):
    """A worker's field is not acceptable (400 at a front door); ``field`` names it,
    ``message`` is a fixed English text (a msgid the pages translate), ``detail`` a value."""

    def __init__(self, field: str, message: str, detail: str = "") -> None:
        super().__init__(f"{message} ({detail})" if detail else message, field=field)
        self.field = field
        self.message = message
        self.detail = detail


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class WorkerInput:
    """A worker to register, already checked: the key and masks only, never a full identity."""

    person_key: str
    masked_name: str
    masked_number: str
    employer: str
    trade: str
    card_number: str | None
    valid_from: dt.date | None
    valid_until: dt.date | None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RowError:
    """Why one CSV row was not imported: its row number (header = 1), the field, a message."""

    row: int
    field: str
    message: str  # a fixed English text (msgid)
    detail: str = ""  # the value it is about, when there is one


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class ImportResult:
    """What an import did: rows written, rows refused (with why), the roster version after."""

    imported: int
    errors: tuple[RowError, ...]
    version: int | None  # None: nothing was written


# --------------------------------------------------------------------------- checking


def _text(fields: Mapping[str, str], name: str, limit: int, *, required: bool = False) -> str:
    value = (fields.get(name) or "").strip()
    if required and not value:
        raise RosterInputError(name, "required")
    if len(value) > limit:
        raise RosterInputError(name, "too long", f"at most {limit}")
    if _CONTROL.search(value):
        raise RosterInputError(name, "control characters are not allowed")
    return value


def _date(fields: Mapping[str, str], name: str) -> dt.date | None:
    value = (fields.get(name) or "").strip()
    if not value:
        return None
    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        day = None
    if day is None or len(value) != 10:
        raise RosterInputError(name, "a date is YYYY-MM-DD")
    return day


def _identity(fields: Mapping[str, str], pepper: bytes | None, today: dt.date) -> tuple[str, str]:
    """(person_key, masked number) from the identity fields."""
    given_key = (fields.get("person_key") or "").strip()
    id_type = (fields.get("id_type") or "").strip().upper()
    number = (fields.get("id_number") or "").strip().upper()
    if given_key and (number or id_type):
        raise RosterInputError("person_key", "give either a person key or a document, not both")
    if given_key:
        if not _HEX_KEY.fullmatch(given_key):
            raise RosterInputError("person_key", "a person key is 64 lower-case hex characters")
        return given_key, ""
    if not number:
        raise RosterInputError("id_number", "required (or a person_key)")
    if len(number) > 32:
        raise RosterInputError("id_number", "too long", "at most 32")
    nationality: str | None = None
    if id_type == "PP":
        nationality = (fields.get("nationality") or "").strip().upper()
        if not _NATION.fullmatch(nationality):
            raise RosterInputError("nationality", "a passport needs a three-letter nationality")
        if not _PASSPORT.fullmatch(number):
            raise RosterInputError("id_number", "a passport number is 5-20 letters and digits")
    elif id_type in ("", "RIC", "HMT", "FPR"):
        parsed = parse_cnid(number, at=today)
        if not isinstance(parsed, CnidNumber):
            raise RosterInputError("id_number", "not a valid ID number", parsed.reason.value)
        if id_type and parsed.kind.value != id_type:
            raise RosterInputError("id_type", "the number is of another type", parsed.kind.value)
        id_type, number = parsed.kind.value, parsed.number
    else:
        raise RosterInputError("id_type", "one of RIC, HMT, FPR, PP")
    if pepper is None:
        raise RosterInputError(
            "id_number", "this hub has no person-key pepper configured: give the person_key"
        )
    canonical_identity(id_type, number, nationality)  # the checks above make this total
    return person_key(pepper, id_type, number, nationality), mask_number(number)


def check_worker(fields: Mapping[str, str], *, pepper: bytes | None, today: dt.date) -> WorkerInput:
    """A worker from form or CSV fields (strings), checked; RosterInputError names the first
    bad field.  The full name and number are masked here and go no further."""
    key, masked_number = _identity(fields, pepper, today)
    name = _text(fields, "name", MAX_NAME, required=True)
    employer = _text(fields, "employer", MAX_EMPLOYER, required=True)
    trade = _text(fields, "trade", MAX_TRADE)
    card = _text(fields, "card_number", MAX_CARD) or None
    if card is not None and not _CARD.fullmatch(card):
        raise RosterInputError("card_number", "a card number is letters and digits")
    valid_from = _date(fields, "valid_from")
    valid_until = _date(fields, "valid_until")
    if valid_from and valid_until and valid_until < valid_from:
        raise RosterInputError("valid_until", "before valid_from")
    return WorkerInput(
        person_key=key,
        masked_name=mask_name(name),
        masked_number=masked_number,
        employer=employer,
        trade=trade,
        card_number=card,
        valid_from=valid_from,
        valid_until=valid_until,
    )


# --------------------------------------------------------------------------- changes


_UPSERT_SQL: Final = """
        INSERT INTO workers (site_id, person_key, masked_name, masked_number, employer, trade,
                             card_number, valid_from, valid_until, version)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
        ON CONFLICT (site_id, person_key) DO UPDATE SET masked_name = $3,
            masked_number = CASE WHEN $4 = '' THEN workers.masked_number ELSE $4 END,
            employer = $5, trade = $6, card_number = $7, valid_from = $8, valid_until = $9,
            version = $10, added_at = now(), removed_at = NULL, removed_by = NULL
"""


def _upsert_args(site_id: str, worker: WorkerInput, version: int) -> tuple[object, ...]:
    return (
        site_id,
        worker.person_key,
        worker.masked_name,
        worker.masked_number,
        worker.employer,
        worker.trade,
        worker.card_number,
        worker.valid_from,
        worker.valid_until,
        version,
    )


async def add_worker(
    con: Connection, scope: Scope, site_id: str, worker: WorkerInput, *, actor: str
) -> int:
    """Register (or re-register, updating) a worker; return the new roster version."""
    await require_site(con, scope, site_id, CONSTRUCTION)
    async with con.transaction():
        version = await bump_version(con, "roster")
        await con.execute(_UPSERT_SQL, *_upsert_args(site_id, worker, version))
        await audit.record(
            con, actor, "roster_add", person_key=worker.person_key, site_id=site_id,
            version=version,
        )  # fmt: skip
    return version


async def expire_worker(
    con: Connection, scope: Scope, site_id: str, key: str, *, actor: str
) -> int:
    """End a worker's registration now (a tombstone: the next roster bundle leaves them out);
    return the new roster version.  NotFound when they are not registered there."""
    await require_site(con, scope, site_id, CONSTRUCTION)
    if not _HEX_KEY.fullmatch(key):
        raise RosterInputError("person_key", "a person key is 64 lower-case hex characters")
    async with con.transaction():
        listed = await con.fetchval(
            "SELECT true FROM workers WHERE site_id = $1 AND person_key = $2 "
            "AND removed_at IS NULL FOR UPDATE",
            site_id,
            key,
        )
        if not listed:
            raise NotFound("no such worker registered at this site", site_id=site_id)
        version = await bump_version(con, "roster")
        await con.execute(
            "UPDATE workers SET removed_at = now(), removed_by = $3, version = $4 "
            "WHERE site_id = $1 AND person_key = $2",
            site_id,
            key,
            actor[:64],
            version,
        )
        await audit.record(
            con, actor, "roster_expire", person_key=key, site_id=site_id, version=version
        )
    return version


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030")
    except UnicodeDecodeError:
        raise BadRequest("the file is neither UTF-8 nor GB 18030 text", field="file") from None


def _header_errors(header: list[str]) -> list[RowError]:
    errors = [RowError(row=1, field=h[:40], message="unknown column") for h in header
              if h not in COLUMNS]  # fmt: skip
    if len(set(header)) != len(header):
        errors.append(RowError(row=1, field="", message="a column is named twice"))
    if "name" not in header or "employer" not in header:
        errors.append(RowError(row=1, field="", message="columns name and employer are needed"))
    if not {"id_number", "person_key"} & set(header):
        errors.append(RowError(row=1, field="", message="an id_number or person_key column"))
    return errors


def _row(
    row: int,
    header: list[str],
    fields: list[str],
    seen: Mapping[str, int],
    *,
    pepper: bytes | None,
    today: dt.date,
) -> WorkerInput | RowError:
    """One data row checked whole: a worker, or the first reason it is refused."""
    if len(fields) != len(header):
        return RowError(
            row=row,
            field="",
            message="wrong number of fields",
            detail=f"{len(fields)}/{len(header)}",
        )
    try:
        worker = check_worker(dict(zip(header, fields, strict=True)), pepper=pepper, today=today)
    except RosterInputError as exc:
        return RowError(row=row, field=exc.field, message=exc.message, detail=exc.detail)
    if worker.person_key in seen:
        field = "person_key" if "person_key" in header else "id_number"
        return RowError(
            row=row, field=field, message="the same person as an earlier row",
            detail=str(seen[worker.person_key]),
        )  # fmt: skip
    return worker


def parse_roster_csv(
    data: bytes, *, pepper: bytes | None, today: dt.date
) -> tuple[list[tuple[int, WorkerInput]], list[RowError]]:
    """The checked rows of a roster CSV (row number, worker) and the refused ones."""
    if len(data) > MAX_CSV_BYTES:
        raise PayloadTooLarge(f"a roster file is at most {MAX_CSV_BYTES} bytes", field="file")
    if b"\x00" in data:
        raise BadRequest("not a text file", field="file")
    reader = csv.reader(io.StringIO(_decode(data), newline=""))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        raise BadRequest("the file is empty", field="file") from None
    except csv.Error as exc:
        raise BadRequest(f"not CSV: {exc}", field="file") from None
    errors = _header_errors(header)
    if errors:
        return [], errors
    good: list[tuple[int, WorkerInput]] = []
    seen: dict[str, int] = {}
    try:
        for fields in reader:
            if len(good) + len(errors) >= MAX_ROWS:
                raise PayloadTooLarge(f"a roster file has at most {MAX_ROWS} rows", field="file")
            if not any(f.strip() for f in fields):
                continue  # a blank line
            checked = _row(reader.line_num, header, fields, seen, pepper=pepper, today=today)
            if isinstance(checked, RowError):
                errors.append(checked)
            else:
                seen[checked.person_key] = reader.line_num
                good.append((reader.line_num, checked))
    except csv.Error as exc:
        errors.append(RowError(row=reader.line_num, field="", message="not CSV", detail=str(exc)))
        return [], errors
    return good, errors


async def import_roster(
    con: Connection,
    scope: Scope,
    site_id: str,
    data: bytes,
    *,
    pepper: bytes | None,
    today: dt.date,
    actor: str,
) -> ImportResult:
    """Import a roster CSV (module docstring): the good rows in one transaction with one
    version bump, the bad ones reported and not written."""
    await require_site(con, scope, site_id, CONSTRUCTION)
    good, errors = parse_roster_csv(data, pepper=pepper, today=today)
    if not good:
        return ImportResult(imported=0, errors=tuple(errors), version=None)
    async with con.transaction():
        version = await bump_version(con, "roster")
        for _row, worker in good:
            await con.execute(_UPSERT_SQL, *_upsert_args(site_id, worker, version))
        await audit.record(
            con, actor, "roster_import", site_id=site_id, version=version, imported=len(good),
            refused=len(errors),
        )  # fmt: skip
    return ImportResult(imported=len(good), errors=tuple(errors), version=version)
