-- 0003_journal_ids: rows keyed by the journal that numbered them; conflicts recorded; the
-- clock alert (DESIGN §6).
--
-- Never edit once applied anywhere; add 0005_... instead (0004 is taken).
--
-- A gateway's journal numbers its rows 1, 2, 3, ...  A journal that is lost and recreated
-- (disk swapped, file deleted) starts again at 1, so (gateway_id, seq) no longer names one
-- row.  Each journal therefore has a random journal_id (16 hex characters, made when its file
-- is created) sent with every batch, and the key of every row is
-- (site_id, gateway_id, journal_id, seq, ts): site_id leads so that the schema can later be
-- distributed by site (DESIGN §7), ts ends it because a partitioned table's keys must hold the
-- partition key (sound: ts is fixed per journal row).  Rows stored before this migration get
-- journal_id '' (and so do batches from gateways not yet upgraded, which send none).

-- ------------------------------------------------------------------ journal_id on every row

ALTER TABLE scans ADD COLUMN journal_id text NOT NULL DEFAULT ''
    CHECK (journal_id ~ '^([0-9a-f]{16})?$');
ALTER TABLE passages ADD COLUMN journal_id text NOT NULL DEFAULT ''
    CHECK (journal_id ~ '^([0-9a-f]{16})?$');
ALTER TABLE device_events ADD COLUMN journal_id text NOT NULL DEFAULT ''
    CHECK (journal_id ~ '^([0-9a-f]{16})?$');
ALTER TABLE alerts ADD COLUMN journal_id text NOT NULL DEFAULT ''
    CHECK (journal_id ~ '^([0-9a-f]{16})?$');

-- The new keys.  On a partitioned table the parent's key applies to every partition (the old
-- key's per-partition indexes go with it).
ALTER TABLE scans DROP CONSTRAINT scans_pkey;
ALTER TABLE scans ADD PRIMARY KEY (site_id, gateway_id, journal_id, seq, ts);
ALTER TABLE passages DROP CONSTRAINT passages_pkey;
ALTER TABLE passages ADD PRIMARY KEY (site_id, gateway_id, journal_id, seq, ts);
ALTER TABLE device_events DROP CONSTRAINT device_events_pkey;
ALTER TABLE device_events ADD PRIMARY KEY (site_id, gateway_id, journal_id, seq, ts);
-- Alerts are not partitioned: the key needs no ts, and deduplicates the fast lane against the
-- bulk upload of the same alert.
ALTER TABLE alerts DROP CONSTRAINT alerts_gateway_id_seq_key;
ALTER TABLE alerts ADD CONSTRAINT alerts_journal_seq_key
    UNIQUE (site_id, gateway_id, journal_id, seq);

-- ------------------------------------------------------------------ high water per journal

-- The highest seq of one journal of a gateway the hub holds durably from the bulk upload
-- (stored, duplicate, rejected or conflicting), raised with greatest() in the ingest
-- transaction.  gateways.high_water (0002) now mirrors the journal the gateway last uploaded
-- from.
CREATE TABLE gateway_journals (
    gateway_id    text NOT NULL REFERENCES gateways (gateway_id) ON DELETE CASCADE,
    journal_id    text NOT NULL CHECK (journal_id ~ '^([0-9a-f]{16})?$'),
    high_water    bigint NOT NULL DEFAULT 0 CHECK (high_water >= 0),
    first_seen_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (gateway_id, journal_id)
);
INSERT INTO gateway_journals (gateway_id, journal_id, high_water)
SELECT gateway_id, '', high_water FROM gateways WHERE high_water > 0;

-- ------------------------------------------------------------------ conflicts, never silent

-- A row whose (gateway_id, journal_id, seq) the hub already holds with other content (a
-- journal restored from an old copy, a lost commit whose seq was reused): refused to the
-- gateway (it quarantines the row) and recorded here, with a SHA-256 of the refused row's
-- fields (no personal data), for the operator.
CREATE TABLE ingest_conflicts (
    conflict_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    site_id      text NOT NULL,
    gateway_id   text NOT NULL,
    journal_id   text NOT NULL,
    seq          bigint NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('scan', 'passage', 'alert', 'device')),
    ts           timestamptz NOT NULL,
    row_digest   text NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (site_id, gateway_id, journal_id, seq, row_digest)  -- once, however often resent
);
CREATE INDEX ingest_conflicts_gateway_idx ON ingest_conflicts (gateway_id, received_at);

-- ------------------------------------------------------------------ the clock alert

-- A gateway whose rows the hub refused for their time (outside [now - retention - 1 day,
-- now + skew]) raises a 'clock' alert to staff.
ALTER TABLE alerts DROP CONSTRAINT alerts_kind_check;
ALTER TABLE alerts ADD CONSTRAINT alerts_kind_check CHECK (kind IN ('watchlist',
    'minor_unaccompanied', 'foreign_guest', 'capacity', 'device', 'journal', 'clock'));
