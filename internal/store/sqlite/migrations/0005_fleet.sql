-- Fleet: the providers drivers work for, each driver's vehicle kind and
-- provider, and a version of the driver's state that the position index
-- uses to ignore a state read before a newer change. A driver's current
-- request is derived from requests (one open job per driver is enforced
-- there), so the unused drivers.current_request_id column goes.

CREATE TABLE providers (
    code       TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

ALTER TABLE drivers ADD COLUMN vehicle_kind TEXT NOT NULL DEFAULT 'service_van'
    CHECK (vehicle_kind IN ('tow_truck', 'service_van'));
UPDATE drivers SET vehicle_kind = 'tow_truck'
    WHERE EXISTS (SELECT 1 FROM json_each(drivers.capabilities) WHERE value = 'tow');
ALTER TABLE drivers ADD COLUMN provider_code TEXT REFERENCES providers (code);
ALTER TABLE drivers ADD COLUMN state_version INTEGER NOT NULL DEFAULT 0;
ALTER TABLE drivers DROP COLUMN current_request_id;

CREATE INDEX drivers_provider ON drivers (provider_code, user_id) WHERE provider_code IS NOT NULL;
CREATE INDEX drivers_availability ON drivers (availability, user_id);
