-- 0015_bundles: signed bundles down for issue 13 (site operations).
--
-- * bundle_versions gains the kinds 'calendar' (the holiday calendar, one for every gateway)
--   and 'emergency' (the hub's emergency command, per site; one version sequence for all sites).
-- * calendars: every published holiday calendar document (the newest is the bundle's body).
-- * site_time_profiles / site_hour_groups: a site's named time profiles and roster group ->
--   profile, carried in the site's roster bundle ("time_profiles", "groups").
-- * workers.work_group: a worker's roster group (its profile: the site's groups).
-- * site_emergencies: every emergency command for a site (on/off, by whom, why); the newest
--   row of a site is the body of that site's emergency bundle, its version the bundle's.
-- Never edit once applied anywhere; add a new one.
ALTER TABLE bundle_versions DROP CONSTRAINT bundle_versions_kind_check;
ALTER TABLE bundle_versions ADD CONSTRAINT bundle_versions_kind_check
    CHECK (kind IN ('trust', 'watchlist', 'roster', 'calendar', 'emergency'));
INSERT INTO bundle_versions (kind) VALUES ('calendar'), ('emergency');

CREATE TABLE calendars (
    version          bigint PRIMARY KEY,          -- the calendar bundle version it made
    calendar_version integer NOT NULL CHECK (calendar_version > 0),  -- the document's own
    region           text NOT NULL,
    document         jsonb NOT NULL,
    published_by     text NOT NULL,
    published_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE site_time_profiles (
    site_id  text NOT NULL REFERENCES sites,
    name     text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 64),
    profile  jsonb NOT NULL,                      -- {mon..sun, holiday: [...], workday}
    PRIMARY KEY (site_id, name)
);

CREATE TABLE site_hour_groups (
    site_id     text NOT NULL,
    group_name  text NOT NULL CHECK (char_length(group_name) BETWEEN 1 AND 64),
    profile     text NOT NULL,
    PRIMARY KEY (site_id, group_name),
    FOREIGN KEY (site_id, profile) REFERENCES site_time_profiles (site_id, name)
);

ALTER TABLE workers ADD COLUMN work_group text CHECK (char_length(work_group) BETWEEN 1 AND 64);

CREATE TABLE site_emergencies (
    version   bigint PRIMARY KEY,                 -- the emergency bundle version it made
    site_id   text NOT NULL REFERENCES sites,
    active    boolean NOT NULL,                   -- on (true) or off
    note      text NOT NULL DEFAULT '',
    by_user   text NOT NULL,
    at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX site_emergencies_site_idx ON site_emergencies (site_id, version DESC);
