-- 0014_visitors: visitor invitations (issue 13, item 3).  A tenant user (users.role 'tenant',
-- site-scoped through user_sites) or a site manager/admin (`suishen hub visitor invite`)
-- invites a visitor to a site for a window, at some lanes or zones (none listed: all).
--
-- * The visitor is named by person key only (document number -> HMAC with the deployment
--   pepper, central/store/watchlist.key_of); the number itself is never stored.
-- * The tenant is the inviting hub user (tenant_user_id): a tenant sees the invitations it
--   made; a site manager of the site and an admin see all of the site's.
-- * Every invite, cancel and expiry bumps the roster bundle version in the same transaction
--   (the roster bundle of the site carries the current invitations) and is audited.
-- * expired_at: set by the bundle service when valid_until has passed (a new roster version,
--   so the next bundle drops the invitation without anyone acting).
-- Never edit once applied anywhere; add a new one.
CREATE TABLE invitations (
    site_id         text NOT NULL REFERENCES sites,
    invitation_id   bigint GENERATED ALWAYS AS IDENTITY,
    person_key      text NOT NULL CHECK (person_key ~ '^[0-9a-f]{64}$'),
    tenant_user_id  bigint REFERENCES users ON DELETE SET NULL,
    masked_name     text NOT NULL DEFAULT '' CHECK (char_length(masked_name) <= 64),
    valid_from      timestamptz NOT NULL,
    valid_until     timestamptz NOT NULL,
    lanes           text[] NOT NULL DEFAULT '{}' CHECK (cardinality(lanes) <= 32),
    zones           text[] NOT NULL DEFAULT '{}' CHECK (cardinality(zones) <= 32),
    version         bigint NOT NULL,
    created_by      text NOT NULL CHECK (char_length(created_by) BETWEEN 1 AND 64),
    created_at      timestamptz NOT NULL DEFAULT now(),
    cancelled_at    timestamptz,
    cancelled_by    text CHECK (char_length(cancelled_by) <= 64),
    expired_at      timestamptz,
    CHECK (valid_until > valid_from),
    CHECK ((cancelled_at IS NULL) = (cancelled_by IS NULL)),
    PRIMARY KEY (site_id, invitation_id),
    UNIQUE (invitation_id)
);
CREATE INDEX invitations_site_person_idx ON invitations (site_id, person_key);
CREATE INDEX invitations_site_tenant_idx ON invitations (site_id, tenant_user_id, valid_from);
CREATE INDEX invitations_live_idx ON invitations (valid_until)
    WHERE cancelled_at IS NULL AND expired_at IS NULL;
