-- 0007_alerts: the alert loop wired to the hub (DESIGN §7; central/alerts/).
--
-- * The loop ends in 'closed' (protocol.vocabulary.AlertStep.CLOSED): alerts.state and
--   alert_events.step accept it.  City operations is a route (AlertRoute.CITY_OPS): an alert
--   may be raised to it or dispatched to it; every route CHECK lists it.
-- * sites.key_site: a key site (重点部位) whose police alerts must be accepted within 1 minute
--   (else 3 minutes).
-- * Deadlines: alert_deadlines holds, per route, how long after receipt each step is due and
--   when before a deadline the reminder is logged.  The hub writes the values of its config
--   ([alerts] in HUB_SETTINGS.md) here at start; the rows below are the same defaults.  Every
--   alert keeps the deadline of each step it was given at receipt (accept_by .. feedback_by);
--   overdue and reminder flags are computed from them in the queries.
-- * Dispatch: alerts.dispatched_to (the route an alert was dispatched to; an AlertRoute value,
--   checked by central/alerts) and alert_events.route (on a dispatch step: where it went).
-- * Webhooks: an endpoint per route (URL, the file holding its secret, enabled); an outbox of
--   deliveries to make (a hub restart loses none); a log of every attempt; the signatures of
--   callbacks already taken (replay guard, kept past the 5-minute timestamp window).
ALTER TABLE sites ADD COLUMN key_site boolean NOT NULL DEFAULT false;

ALTER TABLE alerts DROP CONSTRAINT alerts_state_check;
ALTER TABLE alerts ADD CONSTRAINT alerts_state_check CHECK (state IN ('received', 'accepted',
    'dispatched', 'handled', 'fed_back', 'closed'));
ALTER TABLE alerts DROP CONSTRAINT alerts_route_check;
ALTER TABLE alerts ADD CONSTRAINT alerts_route_check CHECK (route IN ('police', 'staff',
    'city_ops'));
ALTER TABLE alerts
    ADD COLUMN dispatch_by    timestamptz,
    ADD COLUMN feedback_by    timestamptz,
    ADD COLUMN dispatched_to  text,
    -- the step whose reminder the periodic task has logged (once per step)
    ADD COLUMN reminded_step  text;
CREATE INDEX alerts_inbox_idx ON alerts (alert_id DESC) WHERE state <> 'closed';

ALTER TABLE alert_events DROP CONSTRAINT alert_events_step_check;
ALTER TABLE alert_events ADD CONSTRAINT alert_events_step_check CHECK (step IN ('received',
    'accepted', 'dispatched', 'handled', 'fed_back', 'closed'));
ALTER TABLE alert_events
    ADD COLUMN route text CHECK (route IN ('police', 'staff', 'city_ops'));
ALTER TABLE alert_events ADD CONSTRAINT alert_events_note_check
    CHECK (char_length(note) <= 2000) NOT VALID;

ALTER TABLE watchlist DROP CONSTRAINT watchlist_route_check;
ALTER TABLE watchlist ADD CONSTRAINT watchlist_route_check CHECK (route IN ('police', 'staff',
    'city_ops'));

CREATE TABLE alert_deadlines (
    route            text PRIMARY KEY CHECK (route IN ('police', 'staff', 'city_ops')),
    accept_key_site  interval NOT NULL CHECK (accept_key_site > interval '0'),
    accept           interval NOT NULL CHECK (accept > interval '0'),
    dispatch         interval NOT NULL CHECK (dispatch > interval '0'),
    handle           interval NOT NULL CHECK (handle > interval '0'),
    feed_back        interval NOT NULL CHECK (feed_back > interval '0'),
    -- the reminder comes when this share of the time from receipt to a deadline is left
    remind_share     double precision NOT NULL CHECK (remind_share >= 0 AND remind_share < 1)
);
INSERT INTO alert_deadlines VALUES
    ('police', '1 minute', '3 minutes', '15 minutes', '24 hours', '24 hours', 0.2),
    ('staff', '5 minutes', '5 minutes', '15 minutes', '24 hours', '24 hours', 0.2),
    ('city_ops', '5 minutes', '5 minutes', '15 minutes', '24 hours', '24 hours', 0.2);

CREATE TABLE webhook_endpoints (
    route        text PRIMARY KEY CHECK (route IN ('police', 'staff', 'city_ops')),
    url          text NOT NULL CHECK (url ~ '^https?://' AND char_length(url) <= 2000),
    secret_file  text NOT NULL CHECK (char_length(secret_file) BETWEEN 1 AND 4096),
    enabled      boolean NOT NULL DEFAULT true,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE webhook_outbox (
    outbox_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id    bigint NOT NULL REFERENCES alerts ON DELETE CASCADE,
    route       text NOT NULL CHECK (route IN ('police', 'staff', 'city_ops')),
    step        text NOT NULL CHECK (step IN ('received', 'accepted', 'dispatched', 'handled',
                    'fed_back', 'closed')),
    body        text NOT NULL,
    attempts    integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_at     timestamptz NOT NULL DEFAULT now(),
    created_at  timestamptz NOT NULL DEFAULT now(),
    done_at     timestamptz
);
CREATE INDEX webhook_outbox_due_idx ON webhook_outbox (next_at) WHERE done_at IS NULL;
CREATE INDEX webhook_outbox_alert_idx ON webhook_outbox (alert_id);

CREATE TABLE webhook_deliveries (
    delivery_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    outbox_id      bigint NOT NULL REFERENCES webhook_outbox ON DELETE CASCADE,
    alert_id       bigint NOT NULL REFERENCES alerts ON DELETE CASCADE,
    route          text NOT NULL CHECK (route IN ('police', 'staff', 'city_ops')),
    step           text NOT NULL CHECK (step IN ('received', 'accepted', 'dispatched', 'handled',
                       'fed_back', 'closed')),
    attempt        integer NOT NULL CHECK (attempt >= 1),
    -- delivered (2xx), failed (retried later), gave_up (the last attempt failed)
    status         text NOT NULL CHECK (status ~ '^(delivered|failed|gave_up)$'),
    response_code  integer,
    error          text NOT NULL DEFAULT '' CHECK (char_length(error) <= 500),
    ts             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_deliveries_alert_idx ON webhook_deliveries (alert_id, ts);

CREATE TABLE webhook_callbacks_seen (
    signature  text PRIMARY KEY,
    seen_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_callbacks_seen_at_idx ON webhook_callbacks_seen (seen_at);
