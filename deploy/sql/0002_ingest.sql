-- 0002_ingest: what gateway ingest and bundle distribution need beyond 0001 (DESIGN §6).
--
-- Never edit once applied anywhere; add 0003_... instead.

-- ------------------------------------------------------------------ the gateway device journal

-- One row per device event a gateway journalled (kind "device": a driver down/back, a journal
-- warning).  Same key rule as scans: (gateway_id, seq, ts), ts fixed by the journal, so a
-- resent row is a no-op.  Partitioned by UTC day like scans (suishen.central.partitions).
CREATE TABLE device_events (
    gateway_id  text NOT NULL,
    seq         bigint NOT NULL CHECK (seq > 0),
    ts          timestamptz NOT NULL,
    site_id     text NOT NULL,
    lane_id     text,
    detail      jsonb NOT NULL DEFAULT '{}',
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (gateway_id, seq, ts)
) PARTITION BY RANGE (ts);
CREATE INDEX device_events_site_ts_idx ON device_events (site_id, ts);

-- ------------------------------------------------------------------ per-gateway high water

-- The highest seq of the gateway the hub holds durably from the bulk upload (stored, duplicate
-- or rejected), raised with greatest() in the ingest transaction; the fast alert lane does not
-- move it.
ALTER TABLE gateways ADD COLUMN high_water bigint NOT NULL DEFAULT 0 CHECK (high_water >= 0);

-- ------------------------------------------------------------------ bundle change notification

-- Every change of a bundle version (made in the same transaction as the list change) notifies
-- channel suishen_bundles with '<kind>:<version>' at commit, so every hub process long-polling
-- gateways learns of it at once, whoever made the change (hub web UI, `suishen hub watchlist`).
CREATE FUNCTION suishen_bundle_version_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('suishen_bundles', NEW.kind || ':' || NEW.version::text);
    RETURN NEW;
END;
$$;

CREATE TRIGGER bundle_versions_notify
    AFTER UPDATE OF version ON bundle_versions
    FOR EACH ROW WHEN (NEW.version IS DISTINCT FROM OLD.version)
    EXECUTE FUNCTION suishen_bundle_version_notify();
