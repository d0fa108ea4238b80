"""The hub's ingest: a parsed upload batch into the central tables, exactly once (DESIGN §6).

Rows are keyed (site_id, gateway_id, journal_id, seq, ts): seq counts within one journal file
of a gateway (a recreated journal starts again at 1 under a new journal_id), ts is fixed per
journal row, site_id leads so that the schema can be distributed by site.

``ingest(pool, batch)`` takes a :class:`~suishen.sync.wire.ParsedBatch` (rows already validated
one by one by ``wire.parse_batch``) and, in ONE transaction:

1. locks the gateway's row (``SELECT .. FOR UPDATE``: two uploads of one gateway serialise,
   other gateways do not wait), reading the journal's high water with it, and refuses an
   unknown or disabled gateway;
2. rejects, with a reason naming the site, every row whose site_id is not the gateway's
   registered site (the certificate binds the gateway, the registration binds its site);
3. finds conflicts: a row whose (site_id, gateway_id, journal_id, seq) is held with other
   content (another ts, another verdict, ...) is rejected with a ``conflict`` reason, recorded
   in ``ingest_conflicts`` and logged with its seq - never silently dropped.  Only seqs up to
   the journal's high water can be held (alerts: any seq, the fast lane runs ahead), so a
   normal batch costs nothing here;
4. creates the daily partitions the batch's days lack (``partitions.ensure_partitions_for``);
5. scans and passages: a batch none of whose seqs is at or below the journal's high water
   (the usual one: what the gateway sends next) cannot hold a row the hub has - every stored
   row raised the high water to its seq in the transaction that stored it - so it is written
   by binary COPY straight into the partitioned tables (and its visits by a plain INSERT: none
   can be keyed by scans the hub did not have; should a unique violation abort the
   transaction all the same, ``ingest`` stores the batch again with every write checked).
   A batch reaching below the high water (a resend) goes through the connection's TEMP
   staging tables: ``copy_records_to_table``, the conflict look-up of step 3, then
   ``INSERT .. SELECT .. ON CONFLICT DO NOTHING`` (an identical resend inserts nothing: a
   duplicate).  Device events and epochs (few rows) go in
   through ``unnest`` arrays with ``ON CONFLICT DO NOTHING``;
6. alerts: ``ON CONFLICT (site_id, gateway_id, journal_id, seq) DO NOTHING`` (the fast lane may
   have stored them already); each newly stored alert gets its first timeline step,
   ``received`` by ``gateway:<id>``, with its accept-by deadline;
7. raises the journal's high water (``gateway_journals``) to ``greatest(old, batch.max_seq)``;
   ``gateways.high_water`` mirrors it and ``last_seen_at`` is set (one statement).

A per-batch step that works on the rows just stored (derivations, notifications) belongs in
``_store`` after step 6 (the ``inserted`` count is known) and before step 7, inside the same
transaction: see the comment there.

Commit makes it all durable at once, so the high water answered is never ahead of the rows.
A resent batch inserts nothing (every key exists with the same content) and answers the same
high water.

``store_alerts(pool, batch)`` is the fast lane (POST /v1/alerts): steps 3 and 6 for alerts,
without moving the high water (fast-lane seqs run ahead of the bulk cursor).

Exceptions (each carries the HTTP status the gateway API answers)::

    IngestError                  the batch was not stored
     +-- GatewayRefused (403)    unknown or disabled gateway
     +-- IngestUnavailable (503) the database failed in a way worth retrying (serialization,
                                 deadlock, connection lost, server starting or shutting down,
                                 too many connections, timeout); the gateway backs off and resends

Retry or give up is decided by the asyncpg exception class (one per SQLSTATE class), never by
the message text. Anything else propagates: a broken contract, answered 500.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
from collections.abc import Sequence
from typing import Any, Final

import asyncpg
import structlog

from suishen.central.alerts.loop import on_received
from suishen.central.connection import Connection
from suishen.central.derive import derive_ingested
from suishen.central.errors import Forbidden, HubError, Unavailable
from suishen.central.partitions import PartitionPolicy, ensure_partitions_for, partition_name
from suishen.sync.wire import (
    ALERT_COLUMNS,
    DEVICE_COLUMNS,
    PASSAGE_COLUMNS,
    SCAN_COLUMNS,
    ParsedBatch,
)

# How long a new alert may wait to be accepted, and to be handled, by route.
ALERT_DEADLINES: Final = {
    "police": (dt.timedelta(minutes=5), dt.timedelta(hours=1)),
    "staff": (dt.timedelta(minutes=15), dt.timedelta(hours=4)),
}
_SITE_INDEX: Final = 3  # site_id's position in every table's column tuple (wire.py)
_SEQ_MAX: Final = 2**63 - 1
DEFAULT_POLICY: Final = PartitionPolicy()

log = structlog.get_logger("suishen.central.ingest")

# SQLSTATE classes worth a retry: the same batch may well go through a moment later.
RETRYABLE_ERRORS: Final[tuple[type[BaseException], ...]] = (
    asyncpg.SerializationError,  # 40001
    asyncpg.DeadlockDetectedError,  # 40P01
    asyncpg.PostgresConnectionError,  # class 08
    asyncpg.CannotConnectNowError,  # 57P03: starting up / shutting down
    asyncpg.AdminShutdownError,  # 57P01
    asyncpg.CrashShutdownError,  # 57P02
    asyncpg.TooManyConnectionsError,  # 53300
    asyncpg.InsufficientResourcesError,  # class 53
    asyncpg.QueryCanceledError,  # 57014: statement timeout
    asyncpg.LockNotAvailableError,  # 55P03
    asyncpg.InterfaceError,  # the client side of a lost connection (closed, released)
    asyncpg.InternalClientError,
    ConnectionError,
    OSError,
    TimeoutError,
    asyncio.TimeoutError,
)


class IngestError(HubError):
    """The batch was not stored (a HubError: the front door answers its ``status``)."""

    def __init__(self, message: str, *, gateway_id: str) -> None:
        super().__init__(message)
        self.gateway_id = gateway_id


class GatewayRefused(Forbidden, IngestError):
    """The gateway is not registered at the hub, or is disabled (403)."""


class IngestUnavailable(Unavailable, IngestError):
    """The database failed in a retryable way; the gateway should resend later (503)."""


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class IngestResult:
    """The answer to one upload (wire.py): high water and counts."""

    high_water: int
    inserted: int
    duplicates: int
    rejected: tuple[tuple[int, str], ...] = ()

    def as_json(self) -> dict[str, Any]:
        return {
            "high_water": self.high_water,
            "inserted": self.inserted,
            "duplicates": self.duplicates,
            "rejected": [{"seq": seq, "reason": reason} for seq, reason in self.rejected],
        }


def _cols(columns: Sequence[str]) -> str:
    return ", ".join(columns)


_INSERT_SCANS = (
    f"INSERT INTO scans ({_cols(SCAN_COLUMNS)}) SELECT {_cols(SCAN_COLUMNS)} "  # noqa: S608
    "FROM staging_scans "
    "ON CONFLICT DO NOTHING"
)
_INSERT_PASSAGES = (
    f"INSERT INTO passages ({_cols(PASSAGE_COLUMNS)}) SELECT {_cols(PASSAGE_COLUMNS)} "  # noqa: S608
    "FROM staging_passages ON CONFLICT DO NOTHING"
)
# The device rows and alert rows of a batch as a relation (columns named as in the table).
_DEVICES_IN = """(SELECT g AS gateway_id, s AS seq, t AS ts, si AS site_id, l AS lane_id,
        d::jsonb AS detail, j AS journal_id
 FROM unnest($1::text[], $2::bigint[], $3::timestamptz[], $4::text[], $5::text[], $6::text[],
             $7::text[]) AS u(g, s, t, si, l, d, j))"""
_ALERTS_IN = f"""(SELECT * FROM unnest($1::text[], $2::bigint[], $3::timestamptz[], $4::text[],
        $5::text[], $6::bigint[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],
        $12::text[]) AS u({_cols(ALERT_COLUMNS)}))"""  # noqa: S608
_INSERT_DEVICES = f"""
INSERT INTO device_events ({_cols(DEVICE_COLUMNS)})
SELECT {_cols(DEVICE_COLUMNS)} FROM {_DEVICES_IN} AS u
ON CONFLICT DO NOTHING
"""  # noqa: S608
_INSERT_EPOCHS = """
INSERT INTO epochs (gateway_id, epoch_id, ephemeral_public)
SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[])
ON CONFLICT DO NOTHING
"""
# Column names in these statements are wire.py constants, never input (hence the S608 noqa).
_INSERT_ALERTS = f"""
INSERT INTO alerts ({_cols(ALERT_COLUMNS)}, accept_by, handle_by)
SELECT u.*, now() + CASE u.route WHEN 'police' THEN $13::interval ELSE $15::interval END,
            now() + CASE u.route WHEN 'police' THEN $14::interval ELSE $16::interval END
FROM {_ALERTS_IN} AS u
ON CONFLICT (site_id, gateway_id, journal_id, seq) DO NOTHING
RETURNING alert_id, accept_by
"""  # noqa: S608
_KEY: Final = ("site_id", "gateway_id", "journal_id", "seq")


def _clashes_sql(table: str, columns: Sequence[str], source: str, seq_bound: str) -> str:
    """The (seq, ts) of incoming rows whose (site_id, gateway_id, journal_id, seq) the table
    holds, but never with the same content: a resend is identical (duplicate), anything else
    is a conflict.  ``seq_bound`` limits the look-up to seqs that can be held at all.

    Both look-ups are correlated subqueries fenced with OFFSET 0, so the planner keeps them
    per row (index probes; the exact one pruned to ts's partition at run time) instead of
    turning them into a join over the whole table."""
    on = " AND ".join(f"t.{c} = s.{c}" for c in _KEY)
    same = (
        f"ROW({', '.join('t.' + c for c in columns)}) IS NOT DISTINCT FROM "
        f"ROW({', '.join('s.' + c for c in columns)})"
    )
    return (
        f"SELECT s.seq, s.ts FROM {source} AS s WHERE s.seq <= {seq_bound} "  # noqa: S608
        f"AND NOT EXISTS (SELECT 1 FROM {table} t WHERE {on} AND t.ts = s.ts AND {same} "
        "OFFSET 0) "
        f"AND EXISTS (SELECT 1 FROM {table} t WHERE {on} OFFSET 0)"
    )


# Column names and sources are wire.py constants and the statements above, never input.
_CLASH_SCANS = _clashes_sql("scans", SCAN_COLUMNS, "staging_scans", "$1")
_CLASH_PASSAGES = _clashes_sql("passages", PASSAGE_COLUMNS, "staging_passages", "$1")
_CLASH_DEVICES = _clashes_sql("device_events", DEVICE_COLUMNS, _DEVICES_IN, "$8")
# Alerts: the fast lane stores them ahead of the high water, so every seq is looked up (the
# alerts table is not partitioned; the look-up is one unique-index probe per alert).
_CLASH_ALERTS = _clashes_sql("alerts", ALERT_COLUMNS, _ALERTS_IN, "$13")
_RECORD_CONFLICTS = """
INSERT INTO ingest_conflicts (site_id, gateway_id, journal_id, seq, kind, ts, row_digest)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[],
                     $6::timestamptz[], $7::text[])
ON CONFLICT DO NOTHING
"""
_INSERT_ALERT_EVENTS = """
INSERT INTO alert_events (alert_id, step, actor, deadline)
SELECT a, 'received', $3, d FROM unnest($1::bigint[], $2::timestamptz[]) AS u(a, d)
"""


def _count(status: str) -> int:
    """Rows affected from a command status tag ("INSERT 0 12")."""
    return int(status.rsplit(" ", 1)[-1])


def _columns_of(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[]] * width


async def _lock_gateway(con: Connection, gateway_id: str, journal_id: str = "") -> asyncpg.Record:
    """The gateway's row, locked, with the high water of its journal ``journal_id``
    (``journal_high_water``, 0 for a journal not seen yet) read in the same round trip."""
    gateway = await con.fetchrow(
        "SELECT site_id, enabled, high_water, coalesce((SELECT j.high_water "
        "FROM gateway_journals j WHERE j.gateway_id = $1 AND j.journal_id = $2), 0) "
        "AS journal_high_water FROM gateways WHERE gateway_id = $1 FOR UPDATE",
        gateway_id,
        journal_id,
    )
    if gateway is None:
        raise GatewayRefused(f"gateway {gateway_id!r} is not registered", gateway_id=gateway_id)
    if not gateway["enabled"]:
        raise GatewayRefused(f"gateway {gateway_id!r} is disabled", gateway_id=gateway_id)
    locked: asyncpg.Record = gateway
    return locked


def _own_site(
    rows: list[tuple[Any, ...]], site_id: str, rejected: list[tuple[int, str]]
) -> list[tuple[Any, ...]]:
    """The rows of the gateway's own site; the others go to ``rejected`` with a reason."""
    kept = []
    for row in rows:
        if row[_SITE_INDEX] == site_id:
            kept.append(row)
        else:
            rejected.append(
                (row[1], f"site_id {row[_SITE_INDEX]!r} is not this gateway's site {site_id!r}")
            )
    return kept


async def _ensure_partitions(
    con: Connection, rows_by_table: dict[str, list[tuple[Any, ...]]], cap: int
) -> int | None:
    """Create the daily partitions the rows need and lack (a gateway back after a week
    offline), at most ``cap`` of them, those of the lowest seqs first; return the lowest seq
    whose partition was left out (None: all there).  One catalog look-up first:
    ensure_partitions_for takes an advisory lock held to the end of this transaction, which
    would serialise every gateway's ingest behind it."""
    lowest: dict[tuple[str, dt.date], int] = {}  # (table, day) -> its lowest seq
    for table, rows in rows_by_table.items():
        for row in rows:
            key = (table, row[2].date())  # ts is aware UTC
            first = lowest.get(key)
            if first is None or row[1] < first:
                lowest[key] = row[1]
    wanted = {partition_name(t, day): (t, day, seq) for (t, day), seq in lowest.items()}
    if not wanted:
        return None
    missing = await con.fetch(
        "SELECT name FROM unnest($1::text[]) AS name WHERE to_regclass(quote_ident(name)) IS NULL",
        list(wanted),
    )
    needed = sorted((wanted[r["name"]] for r in missing), key=lambda item: item[2])
    by_table: dict[str, set[dt.date]] = {}
    for table, day, _seq in needed[:cap]:
        by_table.setdefault(table, set()).add(day)
    for table, days in sorted(by_table.items()):
        await ensure_partitions_for(con, table, days)
    return needed[cap][2] if len(needed) > cap else None


def _in_window(
    rows: list[tuple[Any, ...]],
    window: tuple[dt.datetime, dt.datetime],
    rejected: list[tuple[int, str]],
) -> list[tuple[Any, ...]]:
    """The rows whose ts is in the hub's clock window; the others go to ``rejected`` with a
    reason starting ``clock`` (the gateway quarantines them and raises a clock alert)."""
    low, high = window
    kept = []
    for row in rows:
        if low <= row[2] <= high:
            kept.append(row)
        else:
            reason = (
                f"clock: ts {row[2]:%Y-%m-%dT%H:%M:%SZ} is outside the hub's window "
                f"{low:%Y-%m-%dT%H:%M:%SZ}..{high:%Y-%m-%dT%H:%M:%SZ}"
            )
            rejected.append((row[1], reason))
    return kept


def _before(rows: list[tuple[Any, ...]], seq: int | None) -> list[tuple[Any, ...]]:
    return rows if seq is None else [row for row in rows if row[1] < seq]


async def _insert_alerts(con: Connection, gateway_id: str, alerts: list[tuple[Any, ...]]) -> int:
    if not alerts:
        return 0
    police, staff = ALERT_DEADLINES["police"], ALERT_DEADLINES["staff"]
    stored = await con.fetch(
        _INSERT_ALERTS, *_columns_of(alerts, len(ALERT_COLUMNS)), *police, *staff
    )
    if stored:
        await con.execute(
            _INSERT_ALERT_EVENTS,
            [r["alert_id"] for r in stored],
            [r["accept_by"] for r in stored],
            f"gateway:{gateway_id}",
        )
        await on_received(con, [r["alert_id"] for r in stored])  # deadlines, webhook queued
    return len(stored)


def _digest(row: tuple[Any, ...]) -> str:
    """A SHA-256 of a refused row's fields: tells two conflicting rows apart without keeping
    what they say (person keys, masked names) in the conflict record."""
    return hashlib.sha256(repr(row).encode()).hexdigest()


class _Conflicts:
    """Rows refused because their key is held with other content (DESIGN §6): rejected to
    the gateway with a ``conflict`` reason, recorded in ingest_conflicts, logged with the seq."""

    def __init__(self, batch: ParsedBatch) -> None:
        self.batch = batch
        self.found: list[tuple[str, tuple[Any, ...]]] = []  # (kind, row)

    async def find(
        self,
        con: Connection,
        kind: str,
        rows: list[tuple[Any, ...]],
        sql: str,
        *args: Any,
    ) -> list[tuple[Any, ...]]:
        """The rows of ``rows`` that do not conflict (the conflicting ones are noted)."""
        if not rows:
            return rows
        clashing = {(r["seq"], r["ts"]) for r in await con.fetch(sql, *args)}
        if not clashing:
            return rows
        kept = []
        for row in rows:
            if (row[1], row[2]) in clashing:
                self.found.append((kind, row))
            else:
                kept.append(row)
        return kept

    async def record(self, con: Connection, rejected: list[tuple[int, str]]) -> None:
        if not self.found:
            return
        journal = self.batch.journal_id or "(none)"
        records = []
        for kind, row in self.found:
            seq = row[1]
            rejected.append(
                (seq, f"conflict: seq {seq} of journal {journal} is held with other content")
            )
            records.append((row[_SITE_INDEX], row[0], row[-1], seq, kind, row[2], _digest(row)))
            log.warning(
                "ingest conflict: a row's key is held with other content; refused and recorded",
                gateway_id=row[0],
                journal_id=journal,
                seq=seq,
                kind=kind,
            )
        await con.execute(_RECORD_CONFLICTS, *_columns_of(records, 7))


def _all_above(rows: list[tuple[Any, ...]], held: int) -> bool:
    return all(row[1] > held for row in rows)


_RAISE_HIGH_WATER = """
WITH journal AS (
    INSERT INTO gateway_journals (gateway_id, journal_id, high_water) VALUES ($1, $2, $3)
    ON CONFLICT (gateway_id, journal_id) DO UPDATE SET
        high_water = greatest(gateway_journals.high_water, EXCLUDED.high_water),
        last_seen_at = now()
    RETURNING high_water
)
UPDATE gateways SET high_water = (SELECT high_water FROM journal), last_seen_at = now()
WHERE gateway_id = $1
RETURNING high_water
"""


async def _insert_scans_and_passages(
    con: Connection, fresh: bool, scans: list[tuple[Any, ...]], passages: list[tuple[Any, ...]]
) -> int:
    """Rows inserted: by binary COPY straight in when the batch is above the high water, else
    from the staging tables, skipping what is already held."""
    inserted = 0
    if fresh:
        if scans:
            inserted += _count(
                await con.copy_records_to_table("scans", records=scans, columns=SCAN_COLUMNS)
            )
        if passages:
            inserted += _count(
                await con.copy_records_to_table(
                    "passages", records=passages, columns=PASSAGE_COLUMNS
                )
            )
        return inserted
    if scans:
        inserted += _count(await con.execute(_INSERT_SCANS))
    if passages:
        inserted += _count(await con.execute(_INSERT_PASSAGES))
    return inserted


async def _store(
    con: Connection,
    batch: ParsedBatch,
    policy: PartitionPolicy,
    now: dt.datetime,
    *,
    trust_high_water: bool = True,
) -> IngestResult:
    gateway = await _lock_gateway(con, batch.gateway_id, batch.journal_id)
    site_id: str = gateway["site_id"]
    held: int = gateway["journal_high_water"]
    rejected = list(batch.rejected)
    window = policy.window(now)
    scans = _in_window(_own_site(batch.scans, site_id, rejected), window, rejected)
    passages = _in_window(_own_site(batch.passages, site_id, rejected), window, rejected)
    alerts = _in_window(_own_site(batch.alerts, site_id, rejected), window, rejected)
    devices = _in_window(_own_site(batch.devices, site_id, rejected), window, rejected)
    conflicts = _Conflicts(batch)
    # Above the high water no scan or passage can be held yet: straight in by COPY (step 5).
    fresh = trust_high_water and _all_above(scans, held) and _all_above(passages, held)
    if scans and not fresh:
        await con.copy_records_to_table("staging_scans", records=scans, columns=SCAN_COLUMNS)
        scans = await conflicts.find(con, "scan", scans, _CLASH_SCANS, held)
    if passages and not fresh:
        await con.copy_records_to_table(
            "staging_passages", records=passages, columns=PASSAGE_COLUMNS
        )
        passages = await conflicts.find(con, "passage", passages, _CLASH_PASSAGES, held)
    device_columns = _columns_of(devices, len(DEVICE_COLUMNS))
    devices = await conflicts.find(con, "device", devices, _CLASH_DEVICES, *device_columns, held)
    alerts = await conflicts.find(
        con, "alert", alerts, _CLASH_ALERTS, *_columns_of(alerts, len(ALERT_COLUMNS)), _SEQ_MAX
    )
    for kind, _row in conflicts.found:
        staging = {"scan": "staging_scans", "passage": "staging_passages"}.get(kind)
        if staging is not None:
            await con.execute(f"DELETE FROM {staging} WHERE seq = $1", _row[1])  # noqa: S608
    # At most policy.max_new_partitions new partitions per batch: the rows from the first one
    # left out on wait for the next batch (the high water stops below them, so they are sent
    # again; nothing is rejected for it).
    deferred = await _ensure_partitions(
        con,
        {"scans": scans, "passages": passages, "device_events": devices},
        policy.max_new_partitions,
    )
    if deferred is not None:
        scans, passages = _before(scans, deferred), _before(passages, deferred)
        alerts, devices = _before(alerts, deferred), _before(devices, deferred)
        rejected = [item for item in rejected if item[0] < deferred]
        if not fresh:
            for staging in ("staging_scans", "staging_passages"):
                await con.execute(f"DELETE FROM {staging} WHERE seq >= $1", deferred)  # noqa: S608
        log.info("ingest deferred rows for want of new partitions", from_seq=deferred)
    inserted = await _insert_scans_and_passages(con, fresh, scans, passages)
    if devices:
        inserted += _count(
            await con.execute(_INSERT_DEVICES, *_columns_of(devices, len(DEVICE_COLUMNS)))
        )
    if batch.epochs:
        await con.execute(_INSERT_EPOCHS, *_columns_of(batch.epochs, 3))
    inserted += await _insert_alerts(con, batch.gateway_id, alerts)
    # Visits and stays (central/derive.py); a fresh batch's are new, inserted unchecked.
    await derive_ingested(con, site_id, scans, now=now, new=fresh)
    await conflicts.record(con, rejected)
    # A per-batch post-insert step (one call) goes here: the batch's rows are stored in this
    # transaction, the high water not yet. Take the rows from the lists kept above (scans,
    # passages, devices, alerts: tuples in wire.py's column order), not from the staging
    # tables, which a batch above the high water never goes through.
    high_water = await con.fetchval(
        _RAISE_HIGH_WATER,
        batch.gateway_id,
        batch.journal_id,
        batch.max_seq if deferred is None else deferred - 1,
    )
    taken = len(scans) + len(passages) + len(alerts) + len(devices)
    return IngestResult(
        high_water=int(high_water),
        inserted=inserted,
        duplicates=taken - inserted,
        rejected=tuple(sorted(rejected)),
    )


async def ingest(
    pool: asyncpg.Pool,
    batch: ParsedBatch,
    *,
    policy: PartitionPolicy = DEFAULT_POLICY,
    now: dt.datetime | None = None,
) -> IngestResult:
    """Store a parsed batch exactly once (see the module docstring); answer the high water.
    ``policy`` gives the clock window and the new-partition cap; ``now`` defaults to the
    clock.

    Raises GatewayRefused (403) or IngestUnavailable (503, retry later).
    """
    now = dt.datetime.now(dt.UTC) if now is None else now
    try:
        try:
            async with pool.acquire() as con, con.transaction():
                return await _store(con, batch, policy, now)
        except asyncpg.UniqueViolationError as exc:
            # A fresh batch is written unchecked (COPY, plain INSERT of its visits); a key
            # held all the same (another journal's visit with the same gateway, seq and ts)
            # aborted it: the batch again, every write checked.
            log.warning(
                "ingest: a fresh batch met a held key; stored again with every write checked",
                gateway_id=batch.gateway_id,
                constraint=exc.constraint_name,
            )
            async with pool.acquire() as con, con.transaction():
                return await _store(con, batch, policy, now, trust_high_water=False)
    except RETRYABLE_ERRORS as exc:
        raise IngestUnavailable(
            f"database unavailable ({type(exc).__name__}); retry", gateway_id=batch.gateway_id
        ) from exc


async def store_alerts(
    pool: asyncpg.Pool,
    batch: ParsedBatch,
    *,
    policy: PartitionPolicy = DEFAULT_POLICY,
    now: dt.datetime | None = None,
) -> int:
    """The fast lane: store the batch's alerts (deduplicated on (site_id, gateway_id,
    journal_id, seq); out of the clock window or conflicting: left to the bulk upload, which
    rejects them), nothing else, without moving the high water; return how many were new."""
    now = dt.datetime.now(dt.UTC) if now is None else now
    try:
        async with pool.acquire() as con, con.transaction():
            gateway = await _lock_gateway(con, batch.gateway_id)
            alerts = _own_site(batch.alerts, gateway["site_id"], [])
            alerts = _in_window(alerts, policy.window(now), [])
            conflicts = _Conflicts(batch)
            alerts = await conflicts.find(
                con,
                "alert",
                alerts,
                _CLASH_ALERTS,
                *_columns_of(alerts, len(ALERT_COLUMNS)),
                _SEQ_MAX,
            )
            stored = await _insert_alerts(con, batch.gateway_id, alerts)
            await conflicts.record(con, [])
            await con.execute(
                "UPDATE gateways SET last_seen_at = now() WHERE gateway_id = $1", batch.gateway_id
            )
            return stored
    except RETRYABLE_ERRORS as exc:
        raise IngestUnavailable(
            f"database unavailable ({type(exc).__name__}); retry", gateway_id=batch.gateway_id
        ) from exc
