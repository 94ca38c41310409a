-- Dispatch: offers to drivers and the rules that keep assignments single.
--
-- An offer is one driver being asked to take one request, with a deadline.
-- The partial unique indexes are the final guard against a double
-- assignment, whatever the code above them does:
--   - a driver holds at most one open offer (so it is never asked to take
--     two jobs at once) and a request has at most one open offer;
--   - a request is offered to a driver once, and accepted once;
--   - requests_one_open_job_per_driver (0001) keeps a driver on one open
--     request, which is the driver's current job.
CREATE TABLE offers (
    id          TEXT PRIMARY KEY,
    request_id  TEXT NOT NULL REFERENCES requests (id),
    driver_id   TEXT NOT NULL REFERENCES users (id),
    round       INTEGER NOT NULL,
    eta_seconds INTEGER NOT NULL,
    distance_m  INTEGER NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('open', 'accepted', 'declined', 'expired', 'withdrawn')),
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    decided_at  INTEGER
) STRICT;
CREATE UNIQUE INDEX offers_one_open_per_driver ON offers (driver_id) WHERE status = 'open';
CREATE UNIQUE INDEX offers_one_open_per_request ON offers (request_id) WHERE status = 'open';
CREATE UNIQUE INDEX offers_one_accepted_per_request ON offers (request_id) WHERE status = 'accepted';
CREATE UNIQUE INDEX offers_once_per_driver ON offers (request_id, driver_id);
CREATE INDEX offers_open_expiry ON offers (expires_at) WHERE status = 'open';

-- Whatever moves a request out of dispatching (an accept, a cancellation
-- through intake, an operator's assignment, unfulfilled), its open offers
-- are withdrawn in the same transaction: an offer is open only while its
-- request is dispatching. (A driver's own job needs no such rule: it is
-- derived from requests, see 0005_fleet.sql.)
CREATE TRIGGER requests_withdraw_offers AFTER UPDATE OF status ON requests
WHEN OLD.status = 'dispatching' AND NEW.status <> 'dispatching'
BEGIN
    UPDATE offers SET status = 'withdrawn', decided_at = NEW.updated_at
    WHERE request_id = NEW.id AND status = 'open';
END;
