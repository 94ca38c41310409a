-- The bounded backbone (docs/operations.md): the outbox holds only rows not
-- yet published, relays claim rows with a lease instead of holding row
-- locks across a publish, and the republish window lives in one row per
-- published batch; the sweeper keeps a schedule and a count per request.

-- Rows sent before this migration have no record of where the broker put
-- them; they leave with their sent marks. Unsent rows stay.
DELETE FROM outbox WHERE sent_at IS NOT NULL;
DROP INDEX outbox_unsent;
DROP INDEX outbox_sent;
ALTER TABLE outbox DROP COLUMN sent_at;

-- One row per relay round. Claimed: seqs are the outbox rows the relay
-- took, no other relay takes them while lease_until is ahead. Published:
-- the rows the broker confirmed were deleted from the outbox and copied
-- here (ids ... acks, parallel arrays in stream-sequence order), with the
-- highest stream sequence per stream in max_streams/max_acks, so the relay
-- can tell what a broker that lost its tail lost. Rows still unconfirmed
-- stay in the outbox, held until lease_until.
CREATE TABLE outbox_batches (
    id           bigserial PRIMARY KEY,
    claimed_at   timestamptz NOT NULL,
    lease_until  timestamptz NOT NULL,
    seqs         bigint[] NOT NULL,
    published_at timestamptz,
    ids          text[],
    subjects     text[],
    payloads     bytea[],
    created_ats  timestamptz[],
    streams      text[],
    acks         bigint[],
    max_streams  text[],
    max_acks     bigint[]
);
CREATE INDEX outbox_batches_lease ON outbox_batches (lease_until);
CREATE INDEX outbox_batches_claimed ON outbox_batches (claimed_at);

-- The sweeper: when it looks at a request next (NULL: once it has waited
-- its status's threshold since updated_at), how often it committed the
-- request's jobs again in this wait, and since when the request is stuck
-- (it gave up re-committing; operators look). Any change of the request
-- resets all three.
ALTER TABLE requests ADD COLUMN next_nudge_at timestamptz;
ALTER TABLE requests ADD COLUMN nudges integer NOT NULL DEFAULT 0;
ALTER TABLE requests ADD COLUMN stuck_at timestamptz;
CREATE INDEX requests_stuck ON requests (status) WHERE stuck_at IS NOT NULL;
