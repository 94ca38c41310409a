-- Dispatch: offers to drivers and the rules that keep assignments single.
--
-- An offer is one driver being asked to take one request, with a deadline.
-- The partial unique indexes are the final guard against a double
-- assignment, whatever the code above them does:
--   - a driver holds at most one open offer (so it is never asked to take
--     two jobs at once) and a request has at most one open offer;
--   - a request is offered to a driver once, and accepted once;
--   - requests_one_open_job_per_driver (0001) keeps a driver on one open
--     request.
CREATE TABLE offers (
    id          text PRIMARY KEY,
    request_id  text NOT NULL REFERENCES requests (id),
    driver_id   text NOT NULL REFERENCES users (id),
    round       integer NOT NULL,
    eta_seconds integer NOT NULL,
    distance_m  integer NOT NULL,
    status      text NOT NULL CHECK (status IN ('open', 'accepted', 'declined', 'expired', 'withdrawn')),
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    decided_at  timestamptz
);
CREATE UNIQUE INDEX offers_one_open_per_driver ON offers (driver_id) WHERE status = 'open';
CREATE UNIQUE INDEX offers_one_open_per_request ON offers (request_id) WHERE status = 'open';
CREATE UNIQUE INDEX offers_one_accepted_per_request ON offers (request_id) WHERE status = 'accepted';
CREATE UNIQUE INDEX offers_once_per_driver ON offers (request_id, driver_id);
CREATE INDEX offers_open_expiry ON offers (expires_at) WHERE status = 'open';

-- Whatever moves a request (a cancellation through intake, a completion,
-- an operator), the database keeps dispatch's rows true to it in the same
-- transaction: a request that leaves the open statuses frees its driver,
-- and one that leaves dispatching withdraws its open offers.
CREATE FUNCTION dispatch_release() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.driver_id IS NOT NULL AND NEW.status NOT IN ('assigned', 'en_route', 'arrived', 'in_service') THEN
        UPDATE drivers SET current_request_id = NULL, updated_at = NEW.updated_at
        WHERE user_id = OLD.driver_id AND current_request_id = OLD.id;
    END IF;
    IF NEW.status <> 'dispatching' THEN
        UPDATE offers SET status = 'withdrawn', decided_at = NEW.updated_at
        WHERE request_id = NEW.id AND status = 'open';
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER requests_dispatch_release AFTER UPDATE OF status ON requests
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION dispatch_release();
