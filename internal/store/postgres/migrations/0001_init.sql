-- Operational schema: accounts, requests with their timeline, idempotency
-- keys and the transactional outbox.

CREATE TABLE users (
    id            text PRIMARY KEY,
    username      text NOT NULL UNIQUE,
    role          text NOT NULL CHECK (role IN ('customer', 'driver', 'operator', 'admin')),
    name          text NOT NULL DEFAULT '',
    phone         text NOT NULL DEFAULT '',
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL
);

CREATE TABLE drivers (
    user_id            text PRIMARY KEY REFERENCES users (id),
    vehicle_plate      text NOT NULL,
    capabilities       text[] NOT NULL,
    availability       text NOT NULL DEFAULT 'offline' CHECK (availability IN ('online', 'offline')),
    current_request_id text,
    updated_at         timestamptz NOT NULL
);

CREATE TABLE requests (
    id                   text PRIMARY KEY,
    owner_id             text NOT NULL REFERENCES users (id),
    status               text NOT NULL,
    service_type         text NOT NULL,
    lat                  double precision NOT NULL,
    lng                  double precision NOT NULL,
    address              text NOT NULL DEFAULT '',
    province             text NOT NULL DEFAULT '',
    district             text NOT NULL DEFAULT '',
    dest_lat             double precision,
    dest_lng             double precision,
    dest_address         text,
    dest_province        text,
    dest_district        text,
    vehicle_plate        text NOT NULL,
    vehicle_make         text NOT NULL DEFAULT '',
    vehicle_model        text NOT NULL DEFAULT '',
    vehicle_type         text NOT NULL,
    insurer              text NOT NULL,
    policy_number        text NOT NULL,
    contact_name         text NOT NULL,
    contact_phone        text NOT NULL,
    notes                text NOT NULL DEFAULT '',
    insurance_status     text NOT NULL,
    insurance_checked_at timestamptz,
    insurance_reason     text,
    -- json, not jsonb: jsonb re-formats and re-orders the insurer's document,
    -- and the API hands it back byte for byte.
    insurance_coverage   json,
    insurance_reference  text,
    driver_id            text REFERENCES users (id),
    driver_name          text,
    driver_plate         text,
    assigned_at          timestamptz,
    eta_seconds          integer,
    created_at           timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL,
    version              integer NOT NULL
);

-- Lists are newest first by id (ids are time-ordered); these serve the
-- customer's own list, the operator's status filter and the driver's jobs.
CREATE INDEX requests_owner ON requests (owner_id, id DESC);
CREATE INDEX requests_status ON requests (status, id DESC);
CREATE INDEX requests_driver ON requests (driver_id, id DESC) WHERE driver_id IS NOT NULL;
-- A driver is never on two open requests: the database refuses it whatever
-- the code above it does.
CREATE UNIQUE INDEX requests_one_open_job_per_driver ON requests (driver_id)
    WHERE driver_id IS NOT NULL AND status IN ('assigned', 'en_route', 'arrived', 'in_service');

CREATE TABLE request_timeline (
    request_id text NOT NULL REFERENCES requests (id),
    seq        integer NOT NULL,
    status     text NOT NULL,
    at         timestamptz NOT NULL,
    actor_id   text NOT NULL DEFAULT '',
    reason     text NOT NULL DEFAULT '',
    PRIMARY KEY (request_id, seq)
);

CREATE TABLE idempotency_keys (
    owner_id    text NOT NULL,
    key         text NOT NULL,
    fingerprint text NOT NULL,
    request_id  text NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (owner_id, key)
);

-- seq orders rows for the relay; id becomes the broker's Nats-Msg-Id.
CREATE TABLE outbox (
    seq        bigserial PRIMARY KEY,
    id         text NOT NULL,
    subject    text NOT NULL,
    payload    bytea NOT NULL,
    created_at timestamptz NOT NULL,
    sent_at    timestamptz
);
CREATE INDEX outbox_unsent ON outbox (seq) WHERE sent_at IS NULL;
