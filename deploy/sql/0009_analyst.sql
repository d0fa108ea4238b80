-- 0009_analyst: what the analysts' privacy functions need (DESIGN §4, §7; issue 11 item 4).
--
-- Touches only the audit and watchlist tables and new objects, so it applies the same with or
-- without the migrations numbered just before it (0006-0008).  Never edit once applied
-- anywhere; add a new one instead.

-- ------------------------------------------------------------------ audit

-- Every reveal (and access report) names the case it serves, beside its reason; the check is
-- NOT VALID so a hub holding older rows still migrates (there were no reveals before 0009).
ALTER TABLE audit ADD COLUMN case_ref text NOT NULL DEFAULT ''
    CHECK (char_length(case_ref) <= 128);
ALTER TABLE audit ADD CONSTRAINT audit_reveal_case_ref
    CHECK (action NOT IN ('reveal', 'access_report') OR
           (char_length(btrim(case_ref)) > 0 AND char_length(btrim(reason)) > 0)) NOT VALID;
CREATE INDEX audit_action_ts_idx ON audit (action, ts);
CREATE INDEX audit_person_ts_idx ON audit (person_key, ts) WHERE person_key IS NOT NULL;

-- ------------------------------------------------------------------ watchlist

-- The fixed list of purposes an entry may serve (suishen.central.store.watchlist.PURPOSES;
-- a test keeps both equal).  A reference table rather than a CHECK list: it is not one of the
-- wire vocabularies of protocol/vocabulary.py.
CREATE TABLE watchlist_purposes (
    purpose text PRIMARY KEY
);
INSERT INTO watchlist_purposes (purpose) VALUES
    ('wanted_person'), ('missing_person'), ('court_order'), ('public_health'), ('site_ban');

-- Entries made through the analysts' functions carry a purpose, a case reference and an expiry;
-- rows made before 0009 (by `suishen hub watchlist add`) keep NULL purpose.
ALTER TABLE watchlist ADD COLUMN purpose text REFERENCES watchlist_purposes;
ALTER TABLE watchlist ADD COLUMN case_ref text NOT NULL DEFAULT ''
    CHECK (char_length(case_ref) <= 128);
ALTER TABLE watchlist ADD COLUMN changed_by text NOT NULL DEFAULT '';
ALTER TABLE watchlist ADD COLUMN changed_at timestamptz;
ALTER TABLE watchlist ADD COLUMN removed_by text;
-- An entry with a purpose always has an expiry (the maximum is a hub setting, checked on write).
ALTER TABLE watchlist ADD CONSTRAINT watchlist_purpose_expires
    CHECK (purpose IS NULL OR (expires_at IS NOT NULL AND char_length(btrim(case_ref)) > 0));
-- The expiry sweep finds live entries past their time.
CREATE INDEX watchlist_live_expiry_idx ON watchlist (expires_at)
    WHERE removed_at IS NULL AND expires_at IS NOT NULL;
