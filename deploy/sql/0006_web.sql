-- 0006_web: people using the hub from a browser or an API client (DESIGN §7).
--
-- Touches only the users table and new objects.  Never edit once applied anywhere; add a new one.
--
-- * users.role gains 'tenant' (protocol.vocabulary.Role.TENANT).
-- * sessions: server-side browser sessions.  The cookie carries a random token; only its SHA-256
--   is stored, so a copy of this table logs nobody in.  Each session has its own CSRF secret
--   (the synchronizer token every form and unsafe request must carry).  A session ends at
--   expires_at (absolute) or when idle for longer than the hub's idle limit (last_seen_at).
-- * api_tokens: bearer tokens for API clients (`suishen hub user token`), stored hashed.
-- * login_throttle: failed logins counted per username and per client address, so a lockout
--   holds across hub processes and restarts.
-- * scans notify channel suishen_scans with the site_id of every site a statement inserted rows
--   for (one notification per site per ingest batch): the live feed of the web UI listens.

ALTER TABLE users DROP CONSTRAINT users_role_check;
ALTER TABLE users ADD CONSTRAINT users_role_check
    CHECK (role IN ('site_manager', 'tenant', 'analyst', 'admin'));
ALTER TABLE users ADD COLUMN password_changed_at timestamptz;

CREATE TABLE sessions (
    token_sha256  text PRIMARY KEY CHECK (token_sha256 ~ '^[0-9a-f]{64}$'),
    user_id       bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    csrf_secret   text NOT NULL CHECK (char_length(csrf_secret) BETWEEN 32 AND 128),
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    client        text NOT NULL DEFAULT '' CHECK (char_length(client) <= 64)
);
CREATE INDEX sessions_user_idx ON sessions (user_id);
CREATE INDEX sessions_expires_idx ON sessions (expires_at);

CREATE TABLE api_tokens (
    token_sha256  text PRIMARY KEY CHECK (token_sha256 ~ '^[0-9a-f]{64}$'),
    user_id       bigint NOT NULL REFERENCES users ON DELETE CASCADE,
    label         text NOT NULL DEFAULT '' CHECK (char_length(label) <= 200),
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz,
    last_used_at  timestamptz,
    revoked_at    timestamptz
);
CREATE INDEX api_tokens_user_idx ON api_tokens (user_id);

-- key: 'user:<username>' or 'addr:<client address>'.
CREATE TABLE login_throttle (
    key           text PRIMARY KEY CHECK (char_length(key) <= 200),
    failures      integer NOT NULL DEFAULT 0 CHECK (failures >= 0),
    window_start  timestamptz NOT NULL DEFAULT now(),
    locked_until  timestamptz
);

CREATE FUNCTION suishen_scans_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('suishen_scans', s.site_id) FROM (SELECT DISTINCT site_id FROM new_rows) s;
    RETURN NULL;
END;
$$;

CREATE TRIGGER scans_notify
    AFTER INSERT ON scans REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION suishen_scans_notify();
