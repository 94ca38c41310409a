-- Each timeline entry keeps the request's version after the change that
-- wrote it: the seq of that change's request.status_changed event. A
-- WebSocket client that resumes after seq n is sent the entries above n,
-- read from here (docs/realtime.md). Both entries written at creation are
-- at version 1; entries written later, before this column existed, stay at
-- 0 (their version is not known) and are never replayed.
ALTER TABLE request_timeline ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
UPDATE request_timeline SET version = 1 WHERE seq <= 2;
