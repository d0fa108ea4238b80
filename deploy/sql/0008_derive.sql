-- 0008_derive: visits and stays derived from the scans (suishen.central.derive), the columns
-- and indexes the analyst queries need (suishen.central.queries: trace, crowd, hotel_check,
-- construction, watchlist_hits, anomalies).  Never edit once applied anywhere; add a new one.

-- ------------------------------------------------------------------ how a visit / stay ended

-- close_reason: 'out' (the person's out / checkout scan), 'reset' (the site's daily reset),
-- 'max_length' (the longest visit or stay the hub allows), 'reentry' (the person's next entry
-- at the same site with no out in between).  NULL while open.  close_by: when an open visit or
-- stay will be closed if no out arrives (the earlier of the reset and the maximum length);
-- kept once closed (the derivation recomputes it from the in record).
ALTER TABLE visits ADD COLUMN close_reason text
    CHECK (close_reason IN ('out', 'reset', 'max_length', 'reentry'));
ALTER TABLE visits ADD COLUMN close_by timestamptz;
-- The journal of the in record (0003): the scan it came from is (site_id, in_gateway_id,
-- in_journal_id, in_seq, in_ts), a primary-key look-up (masked values for display).
ALTER TABLE visits ADD COLUMN in_journal_id text NOT NULL DEFAULT ''
    CHECK (in_journal_id ~ '^([0-9a-f]{16})?$');
ALTER TABLE visits ADD CONSTRAINT visits_closed_check
    CHECK ((out_ts IS NULL) = (close_reason IS NULL));

ALTER TABLE stays ADD COLUMN close_reason text
    CHECK (close_reason IN ('out', 'reset', 'max_length', 'reentry'));
ALTER TABLE stays ADD COLUMN close_by timestamptz;
ALTER TABLE stays ADD COLUMN checkin_journal_id text NOT NULL DEFAULT ''
    CHECK (checkin_journal_id ~ '^([0-9a-f]{16})?$');
ALTER TABLE stays ADD CONSTRAINT stays_closed_check
    CHECK ((checkout_ts IS NULL) = (close_reason IS NULL));

-- ------------------------------------------------------------------ where sites are

-- Coordinates (WGS84 degrees) for the travel-time anomaly; district for crowds per district.
ALTER TABLE sites ADD COLUMN lat double precision CHECK (lat BETWEEN -90 AND 90);
ALTER TABLE sites ADD COLUMN lon double precision CHECK (lon BETWEEN -180 AND 180);
ALTER TABLE sites ADD COLUMN district text NOT NULL DEFAULT '';
CREATE INDEX sites_district_idx ON sites (district);

-- ------------------------------------------------------------------ covering indexes

-- trace: a person's visits (index only), then the visits at a site around a time.
CREATE INDEX visits_person_cover_idx ON visits (person_key, in_ts)
    INCLUDE (site_id, out_ts, close_by);
CREATE INDEX visits_site_cover_idx ON visits (site_id, in_ts)
    INCLUDE (person_key, out_ts, close_by);
-- occupancy now: the open visits of a site whose close_by is still ahead.
CREATE INDEX visits_open_site_idx ON visits (site_id, close_by) INCLUDE (zone)
    WHERE out_ts IS NULL;
-- anomalies: one code at two sites; denied bursts at one lane.
CREATE INDEX scans_cti_ts_idx ON scans (cti, ts) INCLUDE (site_id, person_key)
    WHERE cti IS NOT NULL;
CREATE INDEX scans_denied_lane_idx ON scans (site_id, lane_id, ts) WHERE verdict = 'deny';
-- watchlist hits by time.
CREATE INDEX alerts_kind_ts_idx ON alerts (kind, ts) INCLUDE (site_id, state, person_key);
