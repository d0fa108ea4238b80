-- 0016_visits_indexes: fewer index entries for every visit the ingest's derivation writes
-- (issue 12).  Never edit once applied anywhere; add a new one.
--
-- visits_open_idx (0001: site_id, person_key WHERE out_ts IS NULL) served a look-up of a
-- person's open visit that nothing makes any more: the derivation pairs a person's events
-- from the scans (suishen.central.derive), the analyst queries read visits by person and time
-- (visits_person_cover_idx) or by site and time, and close_stale finds the open visits by
-- visits_open_site_idx (site_id, close_by WHERE out_ts IS NULL).
DROP INDEX IF EXISTS visits_open_idx;

-- The primary key and the site's covering index become one: the key leads with site_id (as
-- every key of a table that grows with traffic, DESIGN §6) and then in_ts, so it is the
-- (site_id, in_ts) index the site queries read (trace, occupancy, crowds, attendance), with
-- 0008's covering columns.  A visit is keyed by its in record as the scan is (0003): with its
-- journal, so that a recreated journal's in at the same seq and ts as the old journal's is
-- its own visit (keyed without it, the two collided: the derivation's upsert met one key
-- twice and the batch failed).  The derivation's upsert names these columns (ON CONFLICT
-- (site_id, in_ts, in_gateway_id, in_journal_id, in_seq)) and looks a visit up by them.
ALTER TABLE visits DROP CONSTRAINT visits_pkey;
ALTER TABLE visits ADD CONSTRAINT visits_pkey
    PRIMARY KEY (site_id, in_ts, in_gateway_id, in_journal_id, in_seq)
    INCLUDE (person_key, out_ts, close_by, zone, masked_name, masked_number);
DROP INDEX visits_site_cover_idx;
