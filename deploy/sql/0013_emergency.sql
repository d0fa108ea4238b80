-- 0013_emergency: 'emergency' joins the alert kinds (protocol.vocabulary.AlertKind, issue 13).
--
-- A gateway raises an emergency alert when a site goes into emergency release (fire-alarm input,
-- a local command or the hub's signed command) -- to police and to site staff -- and when it
-- ends (to staff).  The CHECK holds exactly the AlertKind values again
-- (tests/central/test_vocabulary_sql.py).  NOT VALID: stored rows are not re-checked.
-- Touches only the alerts table's kind CHECK.  Never edit once applied anywhere; add a new one.
ALTER TABLE alerts DROP CONSTRAINT alerts_kind_check;
ALTER TABLE alerts ADD CONSTRAINT alerts_kind_check CHECK (kind IN ('watchlist',
    'minor_unaccompanied', 'foreign_guest', 'capacity', 'journal', 'clock', 'emergency')) NOT VALID;
