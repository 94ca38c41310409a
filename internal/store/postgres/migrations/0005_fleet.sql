-- Fleet: the providers drivers work for, each driver's vehicle kind and
-- provider, and a version of the driver's state that the position index
-- uses to ignore a state read before a newer change. A driver's current
-- request is derived from requests (one open job per driver is enforced
-- there), so the unused drivers.current_request_id column goes.

CREATE TABLE providers (
    code       text PRIMARY KEY,
    name       text NOT NULL,
    created_at timestamptz NOT NULL
);

ALTER TABLE drivers ADD COLUMN vehicle_kind text NOT NULL DEFAULT 'service_van'
    CHECK (vehicle_kind IN ('tow_truck', 'service_van'));
UPDATE drivers SET vehicle_kind = 'tow_truck' WHERE 'tow' = ANY (capabilities);
ALTER TABLE drivers ADD COLUMN provider_code text REFERENCES providers (code);
ALTER TABLE drivers ADD COLUMN state_version bigint NOT NULL DEFAULT 0;
ALTER TABLE drivers DROP COLUMN current_request_id;

CREATE INDEX drivers_provider ON drivers (provider_code, user_id) WHERE provider_code IS NOT NULL;
CREATE INDEX drivers_availability ON drivers (availability, user_id);
