-- The bounded backbone (docs/operations.md): the outbox holds only rows not
-- yet published, relays claim rows with a lease, and the republish window
-- lives in one row per published batch; the sweeper keeps a schedule and a
-- count per request. Same design as the PostgreSQL store's 0006, with the
-- batch's messages as one JSON document instead of arrays.

-- Rows sent before this migration have no record of where the broker put
-- them; they leave with their sent marks. Unsent rows stay.
DELETE FROM outbox WHERE sent_at IS NOT NULL;
DROP INDEX outbox_unsent;
DROP INDEX outbox_sent;
ALTER TABLE outbox DROP COLUMN sent_at;

-- One row per relay round: seqs (JSON array) are the outbox rows claimed,
-- held from other relays while lease_until is ahead. Once published,
-- messages is a JSON array of the rows the broker confirmed
-- ({id, subject, payload, created_at, stream, ack}, payload base64) and
-- max_acks a JSON object of the highest stream sequence per stream.
CREATE TABLE outbox_claims (
    id           INTEGER PRIMARY KEY,
    claimed_at   INTEGER NOT NULL,
    lease_until  INTEGER NOT NULL,
    seqs         TEXT NOT NULL,
    published_at INTEGER,
    messages     BLOB,
    max_acks     TEXT
) STRICT;
CREATE INDEX outbox_claims_lease ON outbox_claims (lease_until);
CREATE INDEX outbox_claims_claimed ON outbox_claims (claimed_at);

ALTER TABLE requests ADD COLUMN next_nudge_at INTEGER;
ALTER TABLE requests ADD COLUMN nudges INTEGER NOT NULL DEFAULT 0;
ALTER TABLE requests ADD COLUMN stuck_at INTEGER;
CREATE INDEX requests_stuck ON requests (status) WHERE stuck_at IS NOT NULL;
