-- Messaging backbone: what consumers have processed, what they gave up
-- on, what the customers were told, and when the sweeper last nudged a
-- request. Same tables as the SQLite store's 0002_messaging.sql.

-- A consumer records each message id here in the same transaction as the
-- message's effect; the primary key makes a second application fail.
CREATE TABLE processed_messages (
    consumer     text NOT NULL,
    message_id   text NOT NULL,
    processed_at timestamptz NOT NULL,
    PRIMARY KEY (consumer, message_id)
);

CREATE TABLE dead_letters (
    id          text PRIMARY KEY,
    consumer    text NOT NULL,
    stream      text NOT NULL,
    subject     text NOT NULL,
    message_id  text NOT NULL,
    payload     bytea NOT NULL,
    error       text NOT NULL,
    deliveries  integer NOT NULL,
    created_at  timestamptz NOT NULL,
    redriven_at timestamptz,
    UNIQUE (consumer, message_id)
);

CREATE TABLE notifications (
    id           text PRIMARY KEY,
    request_id   text NOT NULL REFERENCES requests (id),
    recipient_id text NOT NULL,
    channel      text NOT NULL,
    template     text NOT NULL,
    body         text NOT NULL,
    created_at   timestamptz NOT NULL
);
CREATE INDEX notifications_request ON notifications (request_id, id);

ALTER TABLE requests ADD COLUMN nudged_at timestamptz;
CREATE INDEX requests_open ON requests (status, updated_at)
    WHERE status NOT IN ('completed', 'cancelled', 'rejected');

CREATE INDEX outbox_sent ON outbox (sent_at) WHERE sent_at IS NOT NULL;
