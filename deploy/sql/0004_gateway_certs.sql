-- 0004_gateway_certs: each gateway's current client certificate, pinned and revocable (DESIGN §6).
--
-- Touches only the gateways table and new objects, so it applies the same with or without
-- other migrations numbered before it.  Never edit once applied anywhere; add a new one instead.

-- gateways.cert_sha256 (0001, so far informational) becomes the pin: the SHA-256 (hex) of the
-- DER of the one client certificate the hub accepts for the gateway.  NULL: none (every request
-- refused until one is registered).  Rows that pinned nothing before keep NULL.
UPDATE gateways SET cert_sha256 = lower(cert_sha256) WHERE cert_sha256 IS NOT NULL;
UPDATE gateways SET cert_sha256 = NULL WHERE cert_sha256 !~ '^[0-9a-f]{64}$';
ALTER TABLE gateways
    ADD CONSTRAINT gateways_cert_sha256_hex CHECK (cert_sha256 ~ '^[0-9a-f]{64}$');

-- Every certificate ever pinned, and what became of it: replaced by a newer one, or revoked.
-- A fingerprint appears once (a retired certificate cannot be registered again).
CREATE TABLE gateway_certificates (
    cert_sha256   text PRIMARY KEY CHECK (cert_sha256 ~ '^[0-9a-f]{64}$'),
    gateway_id    text NOT NULL REFERENCES gateways ON DELETE CASCADE,
    registered_at timestamptz NOT NULL DEFAULT now(),
    retired_at    timestamptz,
    retired_why   text CHECK (retired_why IN ('replaced', 'revoked')),
    CHECK ((retired_at IS NULL) = (retired_why IS NULL))
);
CREATE INDEX gateway_certificates_gateway_idx ON gateway_certificates (gateway_id);
-- At most one current certificate per gateway.
CREATE UNIQUE INDEX gateway_certificates_current_idx
    ON gateway_certificates (gateway_id) WHERE retired_at IS NULL;

-- A change of what a gateway may present (its pin, enabled, site) or its removal notifies
-- channel suishen_gateways with the gateway_id at commit: every hub process drops its cached
-- entry at once (central/store/gateways.py), so a revocation takes effect on the next request.
CREATE FUNCTION suishen_gateway_auth_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('suishen_gateways', OLD.gateway_id);
    ELSE
        PERFORM pg_notify('suishen_gateways', NEW.gateway_id);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER gateways_auth_notify
    AFTER UPDATE OF cert_sha256, enabled, site_id OR DELETE ON gateways
    FOR EACH ROW EXECUTE FUNCTION suishen_gateway_auth_notify();
