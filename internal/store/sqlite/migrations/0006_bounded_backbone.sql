-- The bounded backbone (docs/operations.md): the outbox holds only rows not
-- yet published, relays claim rows with a lease, published rows are kept in
-- outbox_published for the republish window with where the broker put
-- them; the sweeper keeps a schedule and a count per request. Same design
-- as the PostgreSQL store's 0005, one row per published message instead of
-- one per batch (SQLite has no arrays, and no MVCC churn to save).

-- Rows sent before this migration have no record of where the broker put
-- them; they leave with their sent marks. Unsent rows stay.
DELETE FROM outbox WHERE sent_at IS NOT NULL;
DROP INDEX outbox_unsent;
DROP INDEX outbox_sent;
ALTER TABLE outbox DROP COLUMN sent_at;

CREATE TABLE outbox_claims (
    id          INTEGER PRIMARY KEY,
    claimed_at  INTEGER NOT NULL,
    lease_until INTEGER NOT NULL,
    seqs        TEXT NOT NULL -- JSON array of outbox seqs
) STRICT;
CREATE INDEX outbox_claims_lease ON outbox_claims (lease_until);
CREATE INDEX outbox_claims_claimed ON outbox_claims (claimed_at);

CREATE TABLE outbox_published (
    seq          INTEGER PRIMARY KEY,
    id           TEXT NOT NULL,
    subject      TEXT NOT NULL,
    payload      BLOB NOT NULL,
    created_at   INTEGER NOT NULL,
    stream       TEXT NOT NULL,
    ack          INTEGER NOT NULL,
    published_at INTEGER NOT NULL
) STRICT;
CREATE INDEX outbox_published_ack ON outbox_published (stream, ack);
CREATE INDEX outbox_published_at ON outbox_published (published_at);

ALTER TABLE requests ADD COLUMN next_nudge_at INTEGER;
ALTER TABLE requests ADD COLUMN nudges INTEGER NOT NULL DEFAULT 0;
ALTER TABLE requests ADD COLUMN stuck_at INTEGER;
CREATE INDEX requests_stuck ON requests (status) WHERE stuck_at IS NOT NULL;
