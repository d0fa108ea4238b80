-- 0016_visits_indexes: one index fewer for every open visit the ingest's derivation writes.
-- Never edit once applied anywhere; add a new one.
--
-- visits_open_idx (0001: site_id, person_key WHERE out_ts IS NULL) served a look-up of a
-- person's open visit that nothing makes any more: the derivation pairs a person's events
-- from the scans (suishen.central.derive), the analyst queries read visits by person and time
-- (visits_person_cover_idx) or by site and time (visits_site_cover_idx), and close_stale finds
-- the open visits by visits_open_site_idx (site_id, close_by WHERE out_ts IS NULL).
DROP INDEX IF EXISTS visits_open_idx;
