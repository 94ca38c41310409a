-- Operational schema: accounts, requests with their timeline, idempotency
-- keys and the transactional outbox. Times are INTEGER microseconds since
-- the Unix epoch (UTC), which compare and index cheaply.

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    role          TEXT NOT NULL CHECK (role IN ('customer', 'driver', 'operator', 'admin')),
    name          TEXT NOT NULL DEFAULT '',
    phone         TEXT NOT NULL DEFAULT '',
    password_hash TEXT NOT NULL,
    created_at    INTEGER NOT NULL
) STRICT;

CREATE TABLE drivers (
    user_id            TEXT PRIMARY KEY REFERENCES users (id),
    vehicle_plate      TEXT NOT NULL,
    capabilities       TEXT NOT NULL, -- JSON array of service types
    availability       TEXT NOT NULL DEFAULT 'offline' CHECK (availability IN ('online', 'offline')),
    current_request_id TEXT,
    updated_at         INTEGER NOT NULL
) STRICT;

CREATE TABLE requests (
    id                   TEXT PRIMARY KEY,
    owner_id             TEXT NOT NULL REFERENCES users (id),
    status               TEXT NOT NULL,
    service_type         TEXT NOT NULL,
    lat                  REAL NOT NULL,
    lng                  REAL NOT NULL,
    address              TEXT NOT NULL DEFAULT '',
    province             TEXT NOT NULL DEFAULT '',
    district             TEXT NOT NULL DEFAULT '',
    dest_lat             REAL,
    dest_lng             REAL,
    dest_address         TEXT,
    dest_province        TEXT,
    dest_district        TEXT,
    vehicle_plate        TEXT NOT NULL,
    vehicle_make         TEXT NOT NULL DEFAULT '',
    vehicle_model        TEXT NOT NULL DEFAULT '',
    vehicle_type         TEXT NOT NULL,
    insurer              TEXT NOT NULL,
    policy_number        TEXT NOT NULL,
    contact_name         TEXT NOT NULL,
    contact_phone        TEXT NOT NULL,
    notes                TEXT NOT NULL DEFAULT '',
    insurance_status     TEXT NOT NULL,
    insurance_checked_at INTEGER,
    insurance_reason     TEXT,
    insurance_coverage   TEXT,
    insurance_reference  TEXT,
    driver_id            TEXT REFERENCES users (id),
    driver_name          TEXT,
    driver_plate         TEXT,
    assigned_at          INTEGER,
    eta_seconds          INTEGER,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    version              INTEGER NOT NULL
) STRICT;

CREATE INDEX requests_owner ON requests (owner_id, id DESC);
CREATE INDEX requests_status ON requests (status, id DESC);
CREATE INDEX requests_driver ON requests (driver_id, id DESC) WHERE driver_id IS NOT NULL;
-- A driver is never on two open requests: the database refuses it whatever
-- the code above it does.
CREATE UNIQUE INDEX requests_one_open_job_per_driver ON requests (driver_id)
    WHERE driver_id IS NOT NULL AND status IN ('assigned', 'en_route', 'arrived', 'in_service');

CREATE TABLE request_timeline (
    request_id TEXT NOT NULL REFERENCES requests (id),
    seq        INTEGER NOT NULL,
    status     TEXT NOT NULL,
    at         INTEGER NOT NULL,
    actor_id   TEXT NOT NULL DEFAULT '',
    reason     TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (request_id, seq)
) STRICT, WITHOUT ROWID;

CREATE TABLE idempotency_keys (
    owner_id    TEXT NOT NULL,
    key         TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (owner_id, key)
) STRICT, WITHOUT ROWID;

-- seq orders rows for the relay; id becomes the broker's Nats-Msg-Id.
CREATE TABLE outbox (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         TEXT NOT NULL,
    subject    TEXT NOT NULL,
    payload    BLOB NOT NULL,
    created_at INTEGER NOT NULL,
    sent_at    INTEGER
) STRICT;
CREATE INDEX outbox_unsent ON outbox (seq) WHERE sent_at IS NULL;
