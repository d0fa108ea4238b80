"""The ingest's derivation as SQL over the rows just stored (derive.py's set-based path).

The ingest stores a batch (one gateway journal's contiguous seqs), takes the (site, person)
locks (derive_store.py ``_lock``), then derives the visits and stays its allowed scans touch:
here that is one statement per kind that reads the batch back from ``scans`` by primary key
(site, gateway, journal, seq range, ts range: the rows stored in those ranges are the batch's,
on pages just written), so the hub builds nothing per row or per visit.

``derive_sql(kind)`` pairs, per person, each opening with the next event of the batch
(``lead()`` in derive_pairing.py's event order: ts, gateway_id, journal_id, seq, compared as
Python compares them) for every person whose window [first - limit, last + limit] at the site
holds nothing but the batch's own events (counted by one index probe per person, as
derive_store.py's ``_window_sql`` does), computes the end as derive_pairing.py's ``_close``
does (the daily reset is the first of the resets ``$9`` after the opening: the caller passes
them only where each is one well-defined instant) and upserts them (only the end columns
change on conflict, only when they differ).  It returns how many rows it wrote and the
persons whose window holds other events (an earlier visit, another gateway's upload), with
their first and last event, for derive_batch.py's recomputation (NULL arrays: none).

Parameters: $1 site_id, $2..$7 the batch's ranges as arrays (gateway_id, journal_id, first
seq, last seq, first ts, last ts), $8 the kind's directions.
"""

from __future__ import annotations

from typing import Final

__all__ = ["derive_sql"]

# The batch's stored allowed scans of the directions $8, by primary key range; the lateral is
# fenced so that each range is one index range scan (partitions pruned at run time by ts).
_BATCH: Final = """
SELECT s.person_key, s.ts, s.gateway_id, s.seq, s.journal_id, s.direction, s.zone,
       s.nationality, s.minor, s.masked_name, s.masked_number
FROM unnest($2::text[], $3::text[], $4::bigint[], $5::bigint[], $6::timestamptz[],
            $7::timestamptz[]) AS r(g, j, lo, hi, tlo, thi)
JOIN LATERAL (
    SELECT * FROM scans
    WHERE site_id = $1 AND gateway_id = r.g AND journal_id = r.j AND seq >= r.lo
      AND seq <= r.hi AND ts >= r.tlo AND ts <= r.thi
    OFFSET 0
) AS s ON true
WHERE s.verdict = 'allow' AND s.person_key IS NOT NULL AND s.direction = ANY($8::text[])
"""


def derive_sql(
    *,
    table: str,
    columns: tuple[str, ...],
    key: tuple[str, ...],
    label: str,
    extra: tuple[str, ...],
    extra_values: tuple[str, ...],
    upsert: bool = True,
) -> str:
    """The set-based derivation of one kind (visits or stays; names are the constants of
    derive_pairing.py, never input).  ``columns``: the table's key and end columns
    (in_gateway_id, in_journal_id, in_seq, in_ts, out_gateway_id, out_seq, out_ts); ``key``:
    the primary key's columns (the conflict target); ``label``: the column after site_id (zone
    or nationality); ``extra``/``extra_values``: the trailing columns and their source.

    ``upsert`` False: a plain INSERT, for a batch whose scans were all new (no visit can be
    keyed by them; a unique violation aborts the transaction, and the ingest retries the batch
    with ``upsert``).

    Further parameters: $9 the resets (timestamptz[], ascending; empty: no daily reset), $10
    the limit (interval), $11 the opening direction, $12 the closing one, $13 now."""
    in_gateway, in_journal, in_seq, in_ts, out_gateway, out_seq, out_ts = columns
    ends = (out_gateway, out_seq, out_ts, "close_reason", "close_by")
    target = (
        "site_id",
        label,
        "person_key",
        in_gateway,
        in_journal,
        in_seq,
        in_ts,
        *ends,
        *extra,
    )
    conflict = (
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET "
        f"{', '.join(f'{c} = EXCLUDED.{c}' for c in ends)} WHERE "
        f"({', '.join(f'{table}.{c}' for c in ends)}) IS DISTINCT FROM "
        f"({', '.join(f'EXCLUDED.{c}' for c in ends)})"
        if upsert
        else ""
    )
    return f"""
WITH b AS MATERIALIZED ({_BATCH}),
o AS (
    SELECT b.*, lead(ts) OVER w AS f_ts, lead(gateway_id) OVER w AS f_gateway,
           lead(seq) OVER w AS f_seq, lead(direction) OVER w AS f_direction,
           row_number() OVER w AS rn, first_value(ts) OVER w AS lo
    FROM b
    WINDOW w AS (PARTITION BY person_key
                 ORDER BY ts, gateway_id COLLATE "C", journal_id COLLATE "C", seq)
),
-- The probe at each person's last event (the one no event follows: f_ts NULL), where lo is
-- their first event's ts, hi its own and rn their number of events: one window pass, no
-- partition-wide aggregate.  (last_alone named once, in bool_or: the probe is evaluated once
-- per person, and the rows stay in o's order, so the window needs no sort.)
f AS MATERIALIZED (
    SELECT person_key, ts, gateway_id, seq, journal_id, direction, zone, nationality, minor,
           masked_name, masked_number, f_ts, f_gateway, f_seq, f_direction, lo,
           bool_or(last_alone) OVER (PARTITION BY person_key) AS alone
    FROM (
        SELECT o.*, CASE WHEN o.f_ts IS NULL THEN o.rn = (
            SELECT count(*) FROM (
                SELECT site_id, verdict, direction FROM scans
                WHERE person_key = o.person_key AND ts >= o.lo - $10::interval
                  AND ts <= o.ts + $10::interval
                OFFSET 0
            ) AS mine
            WHERE mine.site_id = $1 AND mine.verdict = 'allow'
              AND mine.direction = ANY($8::text[])
        ) END AS last_alone
        FROM o
    ) AS o
),
c AS (
    SELECT e.*,
           CASE WHEN r.reset < e.ts + $10::interval THEN r.reset
                ELSE e.ts + $10::interval END AS close_by,
           CASE WHEN r.reset < e.ts + $10::interval THEN 'reset'
                ELSE 'max_length' END AS limit_reason
    FROM f AS e LEFT JOIN LATERAL (
        SELECT min(x) AS reset FROM unnest($9::timestamptz[]) AS x WHERE x > e.ts
    ) AS r ON true
    WHERE e.alone AND e.direction = $11
),
v AS (SELECT c.*, c.f_ts IS NOT NULL AND c.f_ts <= c.close_by AS followed FROM c),
w AS (
    INSERT INTO {table} ({", ".join(target)})
    SELECT $1, {label}, person_key, gateway_id, journal_id, seq, ts,
           CASE WHEN followed AND f_direction = $12 THEN f_gateway END,
           CASE WHEN followed AND f_direction = $12 THEN f_seq END,
           CASE WHEN followed THEN f_ts WHEN close_by <= $13 THEN close_by END,
           CASE WHEN followed THEN CASE WHEN f_direction = $12 THEN 'out' ELSE 'reentry' END
                WHEN close_by <= $13 THEN limit_reason END,
           close_by, {", ".join(extra_values)}
    FROM v
    {conflict}
    RETURNING 1
)
SELECT (SELECT count(*) FROM w) AS written, array_agg(person_key) AS persons,
       array_agg(lo) AS los, array_agg(ts) AS his
FROM f WHERE f_ts IS NULL AND NOT alone
"""  # noqa: S608 - constants only
