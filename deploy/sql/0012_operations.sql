-- 0012_operations: what `suishen hub status` shows about each gateway (issue 14).
--
-- * gateways.reported_backlog: the rows a gateway had not yet uploaded when it sent its last
--   batch (the X-Suishen-Backlog header of POST /v1/ingest), and when it said so.
-- * gateway_certificates.not_after: the certificate's expiry, recorded when it is pinned
--   (`hub gateway add | reissue`, `site init`), so the hub can warn before it runs out.
-- Touches only these columns.  Never edit once applied anywhere; add a new one.
ALTER TABLE gateways
    ADD COLUMN reported_backlog    bigint CHECK (reported_backlog >= 0),
    ADD COLUMN reported_backlog_at timestamptz;
ALTER TABLE gateway_certificates ADD COLUMN not_after timestamptz;
