"""The upload wire format between a gateway's uploader and the hub's ingest (DESIGN §6).

POST /v1/ingest (JSON, mutual TLS; the client certificate binds gateway_id)::

    {"gateway_id": "gw-1", "journal_id": "<16 hex: the journal that numbered the rows>",
     "rows": [{"seq": 17, "ts": 1795480207.123456, "kind": "scan", ...journal columns...,
               "identity_sealed": base64 | null, "epoch_id": hex16 | null}, ...],
     "epochs": {"<epoch_id hex16>": base64 of the 32-byte ephemeral X25519 public key}}

Answer 200::

    {"high_water": 17, "inserted": 12, "duplicates": 3, "rejected": [{"seq": 9, "reason": ...}]}

Rows are keyed (site_id, gateway_id, journal_id, seq, ts): seq counts within one journal, and a
journal that is lost and recreated starts again at 1 under a new random journal_id, so its rows
and alerts are new rows, never "duplicates".  A batch without journal_id (a gateway from before
journal ids) is the journal ''.  high_water is the highest seq of this gateway's journal the hub
holds durably (stored, duplicate, rejected); the uploader advances its cursor to it and
quarantines the rejected seqs.  A row whose (gateway_id, journal_id, seq) the hub holds with
other content is rejected with a reason starting ``conflict`` and recorded at the hub.  A batch
that cannot be taken at all is answered 400 (not a batch), 403 (gateway binding) or 413 (too
large), with {"error": ..., "row": index or null}.

POST /v1/alerts carries {"gateway_id", "journal_id", "rows": [alert rows, same form]} on the
fast lane; the hub deduplicates on the same key against the bulk upload of the same rows.

Validation is per row: a malformed row is rejected with its reason and the rest of the batch is
taken, so one bad row cannot block a gateway.  Nothing a gateway sends is answered 500: the body
is parsed by ``decode_body`` (strict UTF-8 JSON, no NaN, nested at most MAX_DEPTH deep, checked
before Python's recursive json parser runs) and ``parse_batch`` is total (any JSON value is a
ParsedBatch or a BatchError; every value is type-checked before it is hashed, compared or
formatted; seq fits a bigint; text is storable: no NUL, no lone surrogate; a row's ``detail``
is JSON text of at most MAX_DETAIL_CHARS, nested at most MAX_DETAIL_DEPTH deep).

``parse_body`` (the hub's ingest front door) does both steps on the body's bytes.  A body that
is a well-formed batch of valid rows - what gateways send - is decoded and type-checked in one
pass by msgspec into typed structs (every rule above that a type can say: field names, types,
vocabularies, id and hex patterns, lengths, ranges) and only the rules between fields are left
to Python; anything the typed pass does not take whole (a malformed row, a NUL, deeper
nesting, any doubt) is parsed again by ``decode_body`` + ``parse_batch``, whose answer - the
rejected rows and their reasons, or the BatchError - is the answer.  The typed pass accepts
nothing those two would not, and builds the same ParsedBatch (tests/property/test_wire_fast.py).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Annotated, Any, Final, Literal

import msgspec

from suishen.protocol.vocabulary import (
    AlertKind,
    AlertRoute,
    Direction,
    PassageOutcomeKind,
    RecordKind,
    ScanFormat,
    Verdict,
    WatchLevel,
    values,
)

MAX_ROWS: Final = 1000
MAX_BODY_BYTES: Final = 8 * 1024 * 1024
BACKLOG_HEADER: Final = "X-Suishen-Backlog"  # an upload's sender: rows it still holds unsent
# The values each field may take: the shared vocabulary (protocol/vocabulary.py), defined once.
KINDS: Final = values(RecordKind)
DIRECTIONS: Final = values(Direction)
FORMATS: Final = values(ScanFormat)
VERDICTS: Final = values(Verdict)
OUTCOMES: Final = values(PassageOutcomeKind)
ALERT_KINDS: Final = values(AlertKind)
ROUTES: Final = values(AlertRoute)
LEVELS: Final = values(WatchLevel)
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX16 = re.compile(r"[0-9a-f]{16}")
_TS_MIN, _TS_MAX = 946_684_800.0, 4_102_444_800.0  # 2000-01-01 .. 2100-01-01
SEQ_MAX: Final = 2**63 - 1  # a PostgreSQL bigint
MAX_DEPTH: Final = 8  # nesting of the body ({"rows": [{...}]} is 3)
MAX_DETAIL_DEPTH: Final = 4  # nesting of a row's 'detail' JSON text
MAX_DETAIL_CHARS: Final = 4000
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_INNERMOST = re.compile(r"\[\]|\{\}")

# The one definition of a record's fields (DESIGN §6): every field of a wire row, in order, with
# the Python type of its value when it is not null (bytes travel as base64).  The gateway's
# journal derives its ``events`` columns from it (gateway/journal/rows.py), the hub's per-kind
# columns below take theirs from it, and tests/unit/test_row_fields.py holds them together.
ROW_TYPES: Final[Mapping[str, type]] = MappingProxyType({
    "seq": int, "ts": float, "kind": str, "site_id": str, "lane_id": str, "direction": str,
    "format": str, "verdict": str, "reason": str, "person_key": str, "nationality": str,
    "minor": bool, "status": str, "masked_name": str, "masked_number": str, "cti": str,
    "kid": str, "zone": str, "latency_us": int, "scan_seq": int, "outcome": str, "detail": str,
    "identity_sealed": bytes, "epoch_id": str,
})  # fmt: skip
ROW_FIELDS: Final = tuple(ROW_TYPES)


class BatchError(ValueError):
    """A batch the hub cannot take at all; `status` is the HTTP status to answer."""

    def __init__(self, status: int, message: str, *, row: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.row = row


class RowError(ValueError):
    """One row that is malformed; it is rejected, the rest of the batch goes on."""


# --------------------------------------------------------------------------- gateway side


def encode_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A journal row (JournalRow.as_dict()) as JSON-ready values."""
    out = {name: row.get(name) for name in ROW_FIELDS}
    sealed = out["identity_sealed"]
    if sealed is not None:
        out["identity_sealed"] = base64.b64encode(sealed).decode()
    return out


def encode_batch(
    gateway_id: str, rows: Iterable[Mapping[str, Any]], *, journal_id: str | None = None
) -> dict[str, Any]:
    """The JSON body of POST /v1/ingest (or /v1/alerts) for journal rows of one journal."""
    body_rows, epochs = [], {}
    for row in rows:
        body_rows.append(encode_row(row))
        epoch_id, public = row.get("epoch_id"), row.get("epoch_public")
        if epoch_id is not None and public is not None:
            epochs[epoch_id] = base64.b64encode(public).decode()
    body: dict[str, Any] = {"gateway_id": gateway_id, "rows": body_rows, "epochs": epochs}
    if journal_id is not None:
        body["journal_id"] = journal_id
    return body


# --------------------------------------------------------------------------- hub side


def nesting_within(text: str, max_depth: int) -> bool:
    """True when the JSON text nests arrays/objects at most ``max_depth`` deep (outside its
    strings).  Regular expressions only, no recursion: Python's json parser recurses per level,
    so a deep document must be refused before it is parsed.  Unbalanced brackets (never valid
    JSON) count as too deep."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    for _ in range(max_depth):
        if not brackets:
            return True
        brackets = _INNERMOST.sub("", brackets)
    return not brackets


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def load_json(text: str | bytes, *, max_depth: int) -> Any:
    """Strict JSON text (UTF-8 when bytes; no NaN/Infinity) nested at most ``max_depth`` deep.

    Raises ValueError (UnicodeDecodeError is one) for anything else, never RecursionError."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    if not nesting_within(text, max_depth):
        raise ValueError(f"JSON nested deeper than {max_depth}")
    return json.loads(text, parse_constant=_no_constant)


def decode_body(data: bytes) -> Any:
    """An upload body as a JSON value; raises BatchError 400 (not UTF-8 JSON, or nested deeper
    than MAX_DEPTH)."""
    try:
        return load_json(data, max_depth=MAX_DEPTH)
    except ValueError as exc:
        message = f"the body is not JSON of depth <= {MAX_DEPTH}: {exc}"[:200]
        raise BatchError(400, message) from None


def _show(value: Any) -> str:
    """A value for an error message: short text as itself, anything else by its type (a
    deeply nested value has no repr, and a 5000-digit int has no str)."""
    if isinstance(value, str):
        return repr(value[:64])
    return f"<{type(value).__name__}>"


@dataclass(slots=True)
class ParsedBatch:
    """A validated batch, split by table, as tuples in the central tables' column order."""

    gateway_id: str
    journal_id: str = ""  # '': a gateway from before journal ids
    scans: list[tuple[Any, ...]] = field(default_factory=list)
    passages: list[tuple[Any, ...]] = field(default_factory=list)
    alerts: list[tuple[Any, ...]] = field(default_factory=list)
    devices: list[tuple[Any, ...]] = field(default_factory=list)
    epochs: list[tuple[str, str, bytes]] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)
    max_seq: int = 0
    sites: set[str] = field(default_factory=set)
    days: set[dt.date] = field(default_factory=set)


# The wire fields a row of each kind carries, in its table's column order (the order of the
# tuples _take_row builds); a table's columns are the gateway_id, these, and the journal_id.
SCAN_FIELDS: Final = tuple(
    f for f in ROW_FIELDS if f not in ("kind", "scan_seq", "outcome", "detail")
)
PASSAGE_FIELDS: Final = (
    "seq", "ts", "site_id", "lane_id", "scan_seq", "outcome", "person_key", "direction", "zone",
)  # fmt: skip
SCAN_COLUMNS: Final = ("gateway_id", *SCAN_FIELDS, "journal_id")
PASSAGE_COLUMNS: Final = ("gateway_id", *PASSAGE_FIELDS, "journal_id")
# Alert and device rows carry the rest in their 'detail' JSON: an alert's kind, route, level and
# detail are taken from it (not from the row's own 'kind' and 'detail').
ALERT_COLUMNS: Final = (
    "gateway_id", "seq", "ts", "site_id", "lane_id", "scan_seq", "kind", "route", "level",
    "detail", "person_key", "journal_id",
)  # fmt: skip
DEVICE_COLUMNS: Final = ("gateway_id", "seq", "ts", "site_id", "lane_id", "detail", "journal_id")
# Each table's tuples: seq at 1, ts at 2, site_id at 3, journal_id last.


def parse_batch(document: Any, *, bound_gateway_id: str, max_rows: int = MAX_ROWS) -> ParsedBatch:
    """Validate a decoded batch for the gateway its certificate names.

    Raises BatchError for a batch that cannot be taken; malformed rows go to `rejected`.
    """
    if not isinstance(document, dict):
        raise BatchError(400, "the batch is not a JSON object")
    gateway_id = document.get("gateway_id")
    if gateway_id != bound_gateway_id:
        raise BatchError(
            403, f"this certificate is for {bound_gateway_id!r}, not {_show(gateway_id)}"
        )
    rows = document.get("rows")
    if not isinstance(rows, list):
        raise BatchError(400, "'rows' must be a list")
    if len(rows) > max_rows:
        raise BatchError(413, f"a batch holds at most {max_rows} rows, not {len(rows)}")
    journal_id = document.get("journal_id", "")
    if not isinstance(journal_id, str) or not (journal_id == "" or _HEX16.fullmatch(journal_id)):
        raise BatchError(400, "'journal_id' must be 16 lower-case hex characters")
    batch = ParsedBatch(gateway_id=gateway_id, journal_id=journal_id)
    epochs = document.get("epochs", {})
    if not isinstance(epochs, dict):
        raise BatchError(400, "'epochs' must be an object")
    for epoch_id, public in epochs.items():
        try:
            raw = base64.b64decode(public, validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise BatchError(400, f"epoch {_show(epoch_id)}: public key is not base64") from None
        if not isinstance(epoch_id, str) or not _HEX16.fullmatch(epoch_id) or len(raw) != 32:
            raise BatchError(400, f"epoch {_show(epoch_id)}: needs a hex16 id and a 32-byte key")
        batch.epochs.append((gateway_id, epoch_id, raw))
    known_epochs = {e[1] for e in batch.epochs}
    seen: set[int] = set()
    for index, row in enumerate(rows):
        seq = row.get("seq") if isinstance(row, dict) else None
        if type(seq) is not int or not 0 < seq <= SEQ_MAX:
            raise BatchError(400, f"row {index}: 'seq' must be an integer in 1..2^63-1", row=index)
        if seq in seen:
            raise BatchError(400, f"row {index}: seq {seq} appears twice", row=index)
        seen.add(seq)
        batch.max_seq = max(batch.max_seq, seq)
        try:
            _take_row(batch, row, known_epochs)
        except RowError as exc:
            batch.rejected.append((seq, str(exc)[:200]))
    return batch


def _take_row(batch: ParsedBatch, row: dict[str, Any], known_epochs: set[str]) -> None:
    unknown = set(row) - set(ROW_FIELDS)
    if unknown:
        raise RowError(f"unknown fields {sorted(unknown)}")
    gid, seq, jid = batch.gateway_id, row["seq"], batch.journal_id
    ts_value = row.get("ts")
    if (
        isinstance(ts_value, bool)
        or not isinstance(ts_value, int | float)
        or (isinstance(ts_value, float) and math.isnan(ts_value))
    ):
        raise RowError("'ts' must be a number")
    if not _TS_MIN <= ts_value < _TS_MAX:
        raise RowError("'ts' is outside 2000..2100")
    ts = dt.datetime.fromtimestamp(ts_value, dt.UTC)
    kind = _choice(row, "kind", KINDS, required=True)
    site_id = _ident(row, "site_id", required=True)
    lane_id = _ident(row, "lane_id", required=kind in ("scan", "passage"))
    batch.sites.add(site_id)
    batch.days.add(ts.date())
    if kind == "scan":
        verdict = _choice(row, "verdict", VERDICTS, required=True)
        reason = _text(row, "reason", 64)
        if verdict == "deny" and reason is None:
            raise RowError("a denied scan needs a reason")
        sealed, epoch_id = _sealed(row, known_epochs)
        batch.scans.append((
            gid, seq, ts, site_id, lane_id,
            _choice(row, "direction", DIRECTIONS, required=True),
            _choice(row, "format", FORMATS, required=True),
            verdict, reason, _person(row),
            _text(row, "nationality", 3, exact=True),
            _bool(row, "minor"),
            _choice(row, "status", frozenset({"G", "Y", "R"})),
            _text(row, "masked_name", 128), _text(row, "masked_number", 64),
            _text(row, "cti", 64), _text(row, "kid", 64),
            _ident(row, "zone") or "main",
            _int(row, "latency_us", 0, 2**31 - 1) or 0,
            sealed, epoch_id, jid,
        ))  # fmt: skip
    elif kind == "passage":
        batch.passages.append((
            gid, seq, ts, site_id, lane_id,
            _int(row, "scan_seq", 1, 2**63 - 1, required=True),
            _choice(row, "outcome", OUTCOMES, required=True),
            _person(row),
            _choice(row, "direction", DIRECTIONS) or "in",
            _ident(row, "zone") or "main", jid,
        ))  # fmt: skip
    elif kind == "alert":
        detail = _detail(row)
        batch.alerts.append((
            gid, seq, ts, site_id, lane_id, _int(row, "scan_seq", 1, 2**63 - 1),
            _choice(detail, "kind", ALERT_KINDS, required=True),
            _choice(detail, "route", ROUTES, required=True),
            _choice(detail, "level", LEVELS),
            _text(detail, "detail", 1000) or "",
            _person(row), jid,
        ))  # fmt: skip
    else:
        batch.devices.append((gid, seq, ts, site_id, lane_id, json.dumps(_detail(row)), jid))


def _choice(
    row: Mapping[str, Any], name: str, allowed: frozenset[str], *, required: bool = False
) -> Any:
    value = row.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or value not in allowed:
        raise RowError(f"'{name}' must be one of {sorted(allowed)}")
    return value


def _text(row: Mapping[str, Any], name: str, limit: int, *, exact: bool = False) -> str | None:
    value = row.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit or (exact and len(value) != limit):
        raise RowError(f"'{name}' must be text of {'exactly' if exact else 'at most'} {limit}")
    if not _storable(value):
        raise RowError(f"'{name}' contains a NUL character or a lone surrogate")
    return value


def _ident(row: Mapping[str, Any], name: str, *, required: bool = False) -> Any:
    value = row.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not _ID.fullmatch(value):
        raise RowError(f"'{name}' must be an id (1..64 of A-Za-z0-9._:/-)")
    return value


def _person(row: Mapping[str, Any]) -> str | None:
    value = row.get("person_key")
    if value is None:
        return None
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        raise RowError("'person_key' must be 64 lower-case hex characters")
    return value


def _bool(row: Mapping[str, Any], name: str) -> bool | None:
    value = row.get(name)
    if value is None or isinstance(value, bool):
        return value
    raise RowError(f"'{name}' must be true, false or null")


def _int(row: Mapping[str, Any], name: str, low: int, high: int, *, required: bool = False) -> Any:
    value = row.get(name)
    if value is None and not required:
        return None
    if type(value) is not int or not low <= value <= high:
        raise RowError(f"'{name}' must be an integer in {low}..{high}")
    return value


def _sealed(row: Mapping[str, Any], known_epochs: set[str]) -> tuple[bytes | None, str | None]:
    sealed, epoch_id = row.get("identity_sealed"), row.get("epoch_id")
    if sealed is None and epoch_id is None:
        return None, None
    if not isinstance(sealed, str) or not isinstance(epoch_id, str):
        raise RowError("'identity_sealed' and 'epoch_id' go together")
    if not _HEX16.fullmatch(epoch_id):
        raise RowError("'epoch_id' must be 16 hex characters")
    try:
        raw = base64.b64decode(sealed, validate=True)
    except (binascii.Error, ValueError):
        raise RowError("'identity_sealed' is not base64") from None
    if not 0 < len(raw) <= 4096:
        raise RowError("'identity_sealed' must be 1..4096 bytes")
    del known_epochs  # the epoch may have been sent in an earlier batch
    return raw, epoch_id


def _storable(text: str) -> bool:
    """Text PostgreSQL can store: no NUL, valid UTF-8 (JSON lets a lone surrogate through)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _storable_json(value: Any) -> bool:
    """Every string (key or value) storable; ``value`` is at most MAX_DETAIL_DEPTH deep."""
    if isinstance(value, str):
        return _storable(value)
    if isinstance(value, dict):
        return all(_storable(k) and _storable_json(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_storable_json(v) for v in value)
    return True


def _detail(row: Mapping[str, Any]) -> dict[str, Any]:
    text = row.get("detail")
    if not isinstance(text, str) or len(text) > MAX_DETAIL_CHARS:
        raise RowError(f"'detail' must be JSON text of at most {MAX_DETAIL_CHARS} characters")
    try:
        value = load_json(text, max_depth=MAX_DETAIL_DEPTH)
    except ValueError:
        raise RowError(f"'detail' is not JSON nested at most {MAX_DETAIL_DEPTH} deep") from None
    if not isinstance(value, dict):
        raise RowError("'detail' must be a JSON object")
    if not _storable_json(value):
        raise RowError("'detail' contains a NUL character or a lone surrogate")
    return value


# --------------------------------------------------------------------------- hub side, typed


def _pattern(regex: str) -> Any:
    # \Z, not $: msgspec searches with re, and $ would let a trailing newline through.
    return msgspec.Meta(pattern=f"^{regex}\\Z")


_Hex16 = Annotated[str, _pattern(_HEX16.pattern)]
_HEX_DIGITS: Final = "0123456789abcdef"


def _limited(limit: int) -> Any:
    return Annotated[str, msgspec.Meta(max_length=limit)]


def _one_of(allowed: frozenset[str]) -> Any:
    return Literal[tuple(sorted(allowed))]


# What the typed pass takes for each field (None is allowed for every one but seq, ts, kind
# and site_id): the checks of _take_row that do not depend on the row's kind or other fields,
# but for the patterns of ids and person keys, checked in _parse_typed (a pattern costs msgspec
# a call into re per value; an id recurs, so the batch checks each distinct one once).
_TYPED_FIELDS: Final[dict[str, Any]] = {
    "seq": Annotated[int, msgspec.Meta(gt=0, le=SEQ_MAX)],
    "ts": Annotated[float, msgspec.Meta(ge=_TS_MIN, lt=_TS_MAX)],
    "kind": _one_of(KINDS),
    "site_id": str,
    "lane_id": str,
    "direction": _one_of(DIRECTIONS),
    "format": _one_of(FORMATS),
    "verdict": _one_of(VERDICTS),
    "reason": _limited(64),
    "person_key": Annotated[str, msgspec.Meta(min_length=64, max_length=64)],
    "nationality": Annotated[str, msgspec.Meta(min_length=3, max_length=3)],
    "minor": bool,
    "status": Literal["G", "Y", "R"],
    "masked_name": _limited(128),
    "masked_number": _limited(64),
    "cti": _limited(64),
    "kid": _limited(64),
    "zone": str,
    "latency_us": Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)],
    "scan_seq": Annotated[int, msgspec.Meta(ge=1, le=SEQ_MAX)],
    "outcome": _one_of(OUTCOMES),
    "detail": str,
    "identity_sealed": str,  # base64, decoded as _sealed does
    "epoch_id": _Hex16,
}
_REQUIRED: Final = ("seq", "ts", "kind", "site_id")
_TypedRow: Any = msgspec.defstruct(
    "_TypedRow",
    [
        (name, _TYPED_FIELDS[name])
        if name in _REQUIRED
        else (name, _TYPED_FIELDS[name] | None, None)
        for name in ROW_FIELDS
    ],
    forbid_unknown_fields=True,
)


class _TypedBatch(msgspec.Struct):
    gateway_id: str
    rows: list[_TypedRow]
    journal_id: str = ""
    epochs: dict[str, str] = msgspec.field(default_factory=dict)


_BATCH_DECODER: Final = msgspec.json.Decoder(_TypedBatch)
_NUL_ESCAPE: Final = b"\\u0000"  # the only way JSON text can hold a NUL


def parse_body(data: bytes, *, bound_gateway_id: str, max_rows: int = MAX_ROWS) -> ParsedBatch:
    """``parse_batch(decode_body(data), ...)``, fast for the batches gateways send (see the
    module docstring).  Raises BatchError as those two do."""
    batch = _parse_typed(data, bound_gateway_id, max_rows)
    if batch is None:
        batch = parse_batch(decode_body(data), bound_gateway_id=bound_gateway_id, max_rows=max_rows)
    return batch


def _typed_epochs(gid: str, epochs: dict[str, str]) -> list[tuple[str, str, bytes]] | None:
    out = []
    for epoch_id, public in epochs.items():
        try:
            raw = base64.b64decode(public, validate=True)
        except (binascii.Error, ValueError):
            return None
        if not _HEX16.fullmatch(epoch_id) or len(raw) != 32:
            return None
        out.append((gid, epoch_id, raw))
    return out


def _parse_typed(data: bytes, bound_gateway_id: str, max_rows: int) -> ParsedBatch | None:
    """The batch when every row is valid and the batch can be taken; None for anything else
    (parse_batch then decides, with its reasons)."""
    if _NUL_ESCAPE in data:
        return None
    try:
        document = _BATCH_DECODER.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    gid, jid = document.gateway_id, document.journal_id
    rows = document.rows
    if gid != bound_gateway_id or len(rows) > max_rows:
        return None
    if jid and not _HEX16.fullmatch(jid):
        return None
    epochs = _typed_epochs(gid, document.epochs)
    if epochs is None:
        return None
    batch = ParsedBatch(gateway_id=gid, journal_id=jid, epochs=epochs)
    seen: set[int] = set()
    ids: set[str | None] = {None}  # ids that passed _ID (None: an optional id left out)
    utc, from_timestamp = dt.UTC, dt.datetime.fromtimestamp
    scans, passages, sites, days = batch.scans, batch.passages, batch.sites, batch.days
    for row in rows:
        seq = row.seq
        if seq in seen:
            return None
        seen.add(seq)
        for value in (row.site_id, row.lane_id, row.zone):
            if value not in ids:
                if not _ID.fullmatch(value):
                    return None
                ids.add(value)
        person_key = row.person_key
        if person_key is not None and person_key.strip(_HEX_DIGITS):  # 64 long: checked above
            return None
        kind = row.kind
        ts = from_timestamp(row.ts, utc)
        if kind == "scan":
            verdict, reason = row.verdict, row.reason
            if (
                row.lane_id is None
                or row.direction is None
                or row.format is None
                or verdict is None
                or (reason is None and verdict == "deny")
            ):
                return None
            sealed, epoch_id = row.identity_sealed, row.epoch_id
            if sealed is not None or epoch_id is not None:
                if sealed is None or epoch_id is None:
                    return None
                try:
                    sealed = base64.b64decode(sealed, validate=True)
                except (binascii.Error, ValueError):
                    return None
                if not 0 < len(sealed) <= 4096:
                    return None
            scans.append((
                gid, seq, ts, row.site_id, row.lane_id, row.direction, row.format, verdict,
                reason, person_key, row.nationality, row.minor, row.status,
                row.masked_name, row.masked_number, row.cti, row.kid, row.zone or "main",
                row.latency_us or 0, sealed, epoch_id, jid,
            ))  # fmt: skip
        elif kind == "passage":
            if row.lane_id is None or row.scan_seq is None or row.outcome is None:
                return None
            passages.append((
                gid, seq, ts, row.site_id, row.lane_id, row.scan_seq, row.outcome,
                person_key, row.direction or "in", row.zone or "main", jid,
            ))  # fmt: skip
        else:  # alerts and device events (few): parse_batch's own row check
            try:
                _take_row(batch, msgspec.structs.asdict(row), set())
            except RowError:
                return None
            continue
        sites.add(row.site_id)
        days.add(ts.date())
    batch.max_seq = max(seen, default=0)
    return batch
