-- 0001_init: the central store (DESIGN §4, §6, §7).
--
-- Applied by suishen.central.migrate in one transaction, recorded in schema_migrations with its
-- SHA-256: never edit this file once applied anywhere; add 0002_... instead.
--
-- Conventions
--   * Times are timestamptz.  Gateway record times (ts) come from the gateway journal and never
--     change, so a resent row carries the identical ts (microsecond precision).
--   * Gateway fact tables (scans, passages) and the tables derived from them that hold personal
--     movement data (visits, stays) are PARTITIONED BY RANGE on a time column, one partition per
--     UTC day, named <table>_pYYYYMMDD, created ahead and dropped by retention in
--     suishen.central.partitions.  There is no DEFAULT partition: it would make creating a day's
--     partition fail once a row for that day sat in the default; ingest creates the partition for
--     an unusual day instead (partitions.ensure_partitions_for).
--   * PostgreSQL cannot enforce UNIQUE (gateway_id, seq) on a table partitioned by ts: every
--     unique key must contain the partition key.  The key is (gateway_id, seq, ts), sound because
--     ts is fixed per (gateway_id, seq) by the journal (DESIGN §6).
--   * person_key is the hex HMAC (64 characters), the only identity that joins tables (§4).
--   * No foreign keys from the partitioned fact tables: ingest validates the gateway binding, and
--     a bulk INSERT should not pay a lookup per row.
--   * Enumerations are text with CHECK constraints (easier to extend than enum types).

-- ------------------------------------------------------------------ places and devices

CREATE TABLE sites (
    site_id     text PRIMARY KEY CHECK (char_length(site_id) BETWEEN 1 AND 64),
    kind        text NOT NULL CHECK (kind IN ('building', 'construction', 'hotel', 'venue')),
    name        text NOT NULL DEFAULT '',
    timezone    text NOT NULL DEFAULT 'Asia/Shanghai',
    capacity_soft integer CHECK (capacity_soft > 0),
    capacity_hard integer CHECK (capacity_hard > 0),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE gateways (
    gateway_id  text PRIMARY KEY CHECK (char_length(gateway_id) BETWEEN 1 AND 64),
    site_id     text NOT NULL REFERENCES sites,
    -- SHA-256 (hex) of the client certificate last seen; informational, the binding is the CN.
    cert_sha256 text,
    enabled     boolean NOT NULL DEFAULT true,
    last_seen_at timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX gateways_site_idx ON gateways (site_id);

CREATE TABLE lanes (
    gateway_id  text NOT NULL REFERENCES gateways ON DELETE CASCADE,
    lane_id     text NOT NULL CHECK (char_length(lane_id) BETWEEN 1 AND 64),
    site_id     text NOT NULL REFERENCES sites,
    direction   text NOT NULL CHECK (direction IN ('in', 'out', 'checkin', 'checkout')),
    zone        text NOT NULL DEFAULT 'main',
    PRIMARY KEY (gateway_id, lane_id)
);
CREATE INDEX lanes_site_idx ON lanes (site_id);

-- ------------------------------------------------------------------ gateway records

-- One row per ScanDecided (suishen.gateway.records).
CREATE TABLE scans (
    gateway_id      text NOT NULL,
    seq             bigint NOT NULL CHECK (seq > 0),
    ts              timestamptz NOT NULL,
    site_id         text NOT NULL,
    lane_id         text NOT NULL,
    direction       text NOT NULL CHECK (direction IN ('in', 'out', 'checkin', 'checkout')),
    format          text NOT NULL CHECK (format IN ('SSC1', 'HC1', 'CNID', 'MRZ', 'CARD', 'UNKNOWN')),
    verdict         text NOT NULL CHECK (verdict IN ('allow', 'deny')),
    reason          text CHECK (char_length(reason) <= 64),
    person_key      text CHECK (char_length(person_key) = 64),
    nationality     text CHECK (char_length(nationality) = 3),
    minor           boolean,
    status          text CHECK (status IN ('G', 'Y', 'R')),
    masked_name     text,
    masked_number   text,
    cti             text CHECK (char_length(cti) <= 64),
    kid             text CHECK (char_length(kid) <= 64),
    zone            text NOT NULL DEFAULT 'main',
    latency_us      integer NOT NULL DEFAULT 0 CHECK (latency_us >= 0),
    identity_sealed bytea CHECK (octet_length(identity_sealed) <= 4096),
    epoch_id        text CHECK (epoch_id ~ '^[0-9a-f]{16}$'),
    received_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (verdict = 'allow' OR reason IS NOT NULL),
    CHECK ((identity_sealed IS NULL) = (epoch_id IS NULL)),
    PRIMARY KEY (gateway_id, seq, ts)
) PARTITION BY RANGE (ts);
CREATE INDEX scans_site_ts_idx ON scans (site_id, ts);
CREATE INDEX scans_person_ts_idx ON scans (person_key, ts) WHERE person_key IS NOT NULL;

-- One row per PassageRecorded: what the gate's sensor said after an open.
CREATE TABLE passages (
    gateway_id  text NOT NULL,
    seq         bigint NOT NULL CHECK (seq > 0),
    ts          timestamptz NOT NULL,
    site_id     text NOT NULL,
    lane_id     text NOT NULL,
    scan_seq    bigint NOT NULL,
    outcome     text NOT NULL CHECK (outcome IN ('passed', 'not_passed')),
    person_key  text CHECK (char_length(person_key) = 64),
    direction   text NOT NULL DEFAULT 'in' CHECK (direction IN ('in', 'out', 'checkin', 'checkout')),
    zone        text NOT NULL DEFAULT 'main',
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (gateway_id, seq, ts)
) PARTITION BY RANGE (ts);
CREATE INDEX passages_site_ts_idx ON passages (site_id, ts);
CREATE INDEX passages_person_ts_idx ON passages (person_key, ts) WHERE person_key IS NOT NULL;
CREATE INDEX passages_scan_idx ON passages (gateway_id, scan_seq);

-- Sealing epochs (DESIGN §4): the ephemeral X25519 public key of each gateway epoch, which the
-- hub needs (with its private key) to open identity_sealed.  Small; not partitioned.
CREATE TABLE epochs (
    gateway_id       text NOT NULL,
    epoch_id         text NOT NULL CHECK (epoch_id ~ '^[0-9a-f]{16}$'),
    ephemeral_public bytea NOT NULL CHECK (octet_length(ephemeral_public) = 32),
    received_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (gateway_id, epoch_id)
);

-- ------------------------------------------------------------------ derived: visits and stays

-- A visit pairs an "in" scan with the matching "out" (NULL while inside).  Keyed by its "in" record.
CREATE TABLE visits (
    site_id         text NOT NULL,
    zone            text NOT NULL DEFAULT 'main',
    person_key      text NOT NULL CHECK (char_length(person_key) = 64),
    in_gateway_id   text NOT NULL,
    in_seq          bigint NOT NULL,
    in_ts           timestamptz NOT NULL,
    out_gateway_id  text,
    out_seq         bigint,
    out_ts          timestamptz,
    CHECK (out_ts IS NULL OR out_ts >= in_ts),
    PRIMARY KEY (in_gateway_id, in_seq, in_ts)
) PARTITION BY RANGE (in_ts);
CREATE INDEX visits_site_ts_idx ON visits (site_id, in_ts);
CREATE INDEX visits_person_ts_idx ON visits (person_key, in_ts);
CREATE INDEX visits_open_idx ON visits (site_id, person_key) WHERE out_ts IS NULL;

-- A hotel stay: opened by a "checkin" scan, closed by "checkout".  Keyed by its check-in record.
CREATE TABLE stays (
    site_id             text NOT NULL,
    person_key          text NOT NULL CHECK (char_length(person_key) = 64),
    checkin_gateway_id  text NOT NULL,
    checkin_seq         bigint NOT NULL,
    checkin_ts          timestamptz NOT NULL,
    checkout_gateway_id text,
    checkout_seq        bigint,
    checkout_ts         timestamptz,
    nationality         text CHECK (char_length(nationality) = 3),
    minor               boolean,
    room                text,
    guardian_person_key text CHECK (char_length(guardian_person_key) = 64),
    reported_at         timestamptz,  -- foreign guest: when the registration report included it
    CHECK (checkout_ts IS NULL OR checkout_ts >= checkin_ts),
    PRIMARY KEY (checkin_gateway_id, checkin_seq, checkin_ts)
) PARTITION BY RANGE (checkin_ts);
CREATE INDEX stays_site_ts_idx ON stays (site_id, checkin_ts);
CREATE INDEX stays_person_ts_idx ON stays (person_key, checkin_ts);
CREATE INDEX stays_open_idx ON stays (site_id) WHERE checkout_ts IS NULL;

-- ------------------------------------------------------------------ lists sent down to gateways

-- Construction-site roster (registered workers).  Removal is a tombstone so the roster bundle's
-- version moves forward.
CREATE TABLE workers (
    site_id       text NOT NULL REFERENCES sites,
    person_key    text NOT NULL CHECK (char_length(person_key) = 64),
    masked_name   text NOT NULL DEFAULT '',
    masked_number text NOT NULL DEFAULT '',
    employer      text NOT NULL DEFAULT '',
    card_number   text,
    valid_from    date,
    valid_until   date,
    version       bigint NOT NULL,
    added_at      timestamptz NOT NULL DEFAULT now(),
    removed_at    timestamptz,
    PRIMARY KEY (site_id, person_key)
);
CREATE INDEX workers_version_idx ON workers (version);

CREATE TABLE watchlist (
    person_key  text PRIMARY KEY CHECK (char_length(person_key) = 64),
    level       text NOT NULL CHECK (level IN ('notify', 'deny')),
    route       text NOT NULL CHECK (route IN ('police', 'staff')),
    reason      text NOT NULL DEFAULT '',
    expires_at  timestamptz,
    version     bigint NOT NULL,
    added_by    text NOT NULL DEFAULT '',
    added_at    timestamptz NOT NULL DEFAULT now(),
    removed_at  timestamptz  -- tombstone: the next bundle version leaves the entry out
);
CREATE INDEX watchlist_version_idx ON watchlist (version);

-- Trusted code-signing keys (the trust-list bundle); entry is the protocol.trust JSON entry.
CREATE TABLE trust_keys (
    kid         text PRIMARY KEY,
    entry       jsonb NOT NULL,
    version     bigint NOT NULL,
    added_at    timestamptz NOT NULL DEFAULT now(),
    removed_at  timestamptz
);

-- Monotonic versions of the signed bundles (trust, watchlist, roster).
CREATE TABLE bundle_versions (
    kind        text PRIMARY KEY CHECK (kind IN ('trust', 'watchlist', 'roster')),
    version     bigint NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO bundle_versions (kind) VALUES ('trust'), ('watchlist'), ('roster');

-- ------------------------------------------------------------------ alerts (kept longer)

-- An AlertRaised journalled by a gateway (its own journal seq; scan_seq points to the scan that
-- raised it).  Not partitioned, so UNIQUE (gateway_id, seq) deduplicates the fast lane and the
-- bulk upload of the same alert.
CREATE TABLE alerts (
    alert_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    gateway_id      text NOT NULL,
    seq             bigint NOT NULL CHECK (seq > 0),
    ts              timestamptz NOT NULL,
    site_id         text NOT NULL,
    lane_id         text,
    scan_seq        bigint,
    kind            text NOT NULL CHECK (kind IN ('watchlist', 'minor_unaccompanied',
                        'foreign_guest', 'capacity', 'device', 'journal')),
    route           text NOT NULL CHECK (route IN ('police', 'staff')),
    level           text CHECK (level IN ('notify', 'deny')),
    detail          text NOT NULL DEFAULT '' CHECK (char_length(detail) <= 1000),
    person_key      text CHECK (char_length(person_key) = 64),
    -- The closed loop: the latest step of alert_events, and the deadlines for the next steps.
    state           text NOT NULL DEFAULT 'received' CHECK (state IN ('received', 'accepted',
                        'dispatched', 'handled', 'fed_back')),
    accept_by       timestamptz,
    handle_by       timestamptz,
    received_at     timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (gateway_id, seq)
);
CREATE INDEX alerts_site_ts_idx ON alerts (site_id, ts);
CREATE INDEX alerts_person_ts_idx ON alerts (person_key, ts) WHERE person_key IS NOT NULL;
CREATE INDEX alerts_open_idx ON alerts (route, state, accept_by) WHERE state <> 'fed_back';

-- The alert timeline: one row per step, with who did it and when.
CREATE TABLE alert_events (
    event_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id    bigint NOT NULL REFERENCES alerts ON DELETE CASCADE,
    step        text NOT NULL CHECK (step IN ('received', 'accepted', 'dispatched', 'handled',
                    'fed_back')),
    actor       text NOT NULL,  -- a username, or 'gateway:<id>' / 'system'
    ts          timestamptz NOT NULL DEFAULT now(),
    note        text NOT NULL DEFAULT '',
    deadline    timestamptz  -- the deadline this step set for the next one, if any
);
CREATE INDEX alert_events_alert_idx ON alert_events (alert_id, ts);

-- ------------------------------------------------------------------ people using the hub

CREATE TABLE users (
    user_id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username      text NOT NULL UNIQUE CHECK (char_length(username) BETWEEN 1 AND 64),
    display_name  text NOT NULL DEFAULT '',
    role          text NOT NULL CHECK (role IN ('site_manager', 'analyst', 'admin')),
    password_hash text,
    disabled      boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now()
);

-- Site scope of a site_manager (analysts and admins see all sites).
CREATE TABLE user_sites (
    user_id  bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    site_id  text NOT NULL REFERENCES sites ON DELETE CASCADE,
    PRIMARY KEY (user_id, site_id)
);
CREATE INDEX user_sites_site_idx ON user_sites (site_id);

-- Who did what sensitive thing (reveals above all), why, and when.  Kept longer than scans.
CREATE TABLE audit (
    audit_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ts        timestamptz NOT NULL DEFAULT now(),
    actor     text NOT NULL,
    user_id   bigint REFERENCES users ON DELETE SET NULL,
    action    text NOT NULL,  -- reveal, export, watchlist_add, watchlist_remove, login, ...
    site_id   text,
    person_key text,
    target    jsonb NOT NULL DEFAULT '{}',  -- e.g. {"gateway_id": .., "seq": .., "ts": ..}
    reason    text NOT NULL DEFAULT '',
    CHECK (action <> 'reveal' OR char_length(btrim(reason)) > 0)
);
CREATE INDEX audit_ts_idx ON audit (ts);
CREATE INDEX audit_actor_ts_idx ON audit (actor, ts);
