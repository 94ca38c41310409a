-- Messaging backbone: what consumers have processed, what they gave up
-- on, what the customers were told, and when the sweeper last nudged a
-- request.

-- A consumer records each message id here in the same transaction as the
-- message's effect; the primary key makes a second application fail.
CREATE TABLE processed_messages (
    consumer     TEXT NOT NULL,
    message_id   TEXT NOT NULL,
    processed_at INTEGER NOT NULL,
    PRIMARY KEY (consumer, message_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE dead_letters (
    id          TEXT PRIMARY KEY,
    consumer    TEXT NOT NULL,
    stream      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    message_id  TEXT NOT NULL,
    payload     BLOB NOT NULL,
    error       TEXT NOT NULL,
    deliveries  INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    redriven_at INTEGER,
    UNIQUE (consumer, message_id)
) STRICT;

CREATE TABLE notifications (
    id           TEXT PRIMARY KEY,
    request_id   TEXT NOT NULL REFERENCES requests (id),
    recipient_id TEXT NOT NULL,
    channel      TEXT NOT NULL,
    template     TEXT NOT NULL,
    body         TEXT NOT NULL,
    created_at   INTEGER NOT NULL
) STRICT;
CREATE INDEX notifications_request ON notifications (request_id, id);

ALTER TABLE requests ADD COLUMN nudged_at INTEGER;
CREATE INDEX requests_open ON requests (status, updated_at)
    WHERE status NOT IN ('completed', 'cancelled', 'rejected');

CREATE INDEX outbox_sent ON outbox (sent_at) WHERE sent_at IS NOT NULL;
