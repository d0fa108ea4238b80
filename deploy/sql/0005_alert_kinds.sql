-- 0005_alert_kinds: 'device' leaves the alert kinds (protocol.vocabulary.AlertKind).
--
-- Nothing ever raised a 'device' alert: a device going down or coming back is journalled by the
-- gateway as a row of kind 'device' and lands in device_events, not in alerts.  The CHECK now
-- holds exactly the AlertKind values again (tests/central/test_vocabulary_sql.py).
--
-- NOT VALID: rows already stored are not re-checked (no gateway of ours sent a 'device' alert,
-- but a hub that took one from elsewhere still migrates); every new row is checked.
-- Touches only the alerts table's kind CHECK.  Never edit once applied anywhere; add a new one.
ALTER TABLE alerts DROP CONSTRAINT alerts_kind_check;
ALTER TABLE alerts ADD CONSTRAINT alerts_kind_check CHECK (kind IN ('watchlist',
    'minor_unaccompanied', 'foreign_guest', 'capacity', 'journal', 'clock')) NOT VALID;
