-- 0017_stays_key: stays keyed like visits (0016).  Never edit once applied anywhere; add a
-- new one.
--
-- A stay is keyed by its checkin record as the scan is (0003): with its journal, so that a
-- recreated journal's checkin at the same seq and ts as the old journal's is its own stay
-- (keyed without it, as since 0001, the two collided: the derivation's upsert met one key
-- twice and the batch failed on every resend).  The key leads with site_id, as every key of a
-- table that grows with traffic (DESIGN §6), then checkin_ts, so it is also the
-- (site_id, checkin_ts) index the hotel queries read (suishen.central.queries.hotel,
-- hotel_check; the desk's look-ups in store.hotel_reports name site_id and checkin_ts too):
-- 0001's stays_site_ts_idx, its prefix, is dropped (one index entry fewer per stay written).
-- stays_person_ts_idx and stays_open_idx stay.  The derivation's upsert names these columns
-- (ON CONFLICT (site_id, checkin_ts, checkin_gateway_id, checkin_journal_id, checkin_seq)).
ALTER TABLE stays DROP CONSTRAINT stays_pkey;
ALTER TABLE stays ADD CONSTRAINT stays_pkey
    PRIMARY KEY (site_id, checkin_ts, checkin_gateway_id, checkin_journal_id, checkin_seq);
DROP INDEX stays_site_ts_idx;
