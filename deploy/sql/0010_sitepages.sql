-- 0010_sitepages: what the hotel and construction-site pages need (DESIGN §5, §7).
--
-- Touches only the workers table (0001), so it applies the same with or without the migrations
-- numbered before it.  Never edit once applied anywhere; add a new one instead.

-- A worker's trade (carpenter, electrician, ...) beside the employer that 0001 already has: the
-- muster list counts who is on site by employer and trade.  Both are free text from the site's
-- own roster (a form or a CSV import), bounded so a bad import cannot store megabytes.
ALTER TABLE workers ADD COLUMN trade text NOT NULL DEFAULT ''
    CHECK (char_length(trade) <= 64);
ALTER TABLE workers ADD CONSTRAINT workers_employer_length
    CHECK (char_length(employer) <= 128) NOT VALID;

-- Who expired a registration (removed_at, 0001, is when): a username, shown on the roster page.
ALTER TABLE workers ADD COLUMN removed_by text CHECK (char_length(removed_by) <= 64);

-- The roster page and the muster list read one site's current workers by employer and trade.
CREATE INDEX workers_site_current_idx ON workers (site_id, employer, trade)
    WHERE removed_at IS NULL;
