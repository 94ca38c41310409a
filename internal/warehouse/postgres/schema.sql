-- The PostgreSQL warehouse: a separate database (or schema) from the
-- operational one. Facts are partitioned by month, so that old months can
-- be detached and dropped (retention) and a report over a range reads only
-- its months. Partitions are created by the loader as months appear.
--
-- Text dimensions are COLLATE "C": reports sort byte-wise, as DuckDB does,
-- so both engines answer in the same order.

CREATE TABLE IF NOT EXISTS events (
    event_id    text NOT NULL,
    type        text NOT NULL,
    request_id  text NOT NULL,
    occurred_at timestamptz NOT NULL,
    seq         bigint,
    actor_role  text NOT NULL,
    payload     text NOT NULL,
    -- An event's occurred_at is fixed with its id, so (id, occurred_at) is
    -- as unique as the id, and a primary key may hold the partition key.
    PRIMARY KEY (event_id, occurred_at)
) PARTITION BY RANGE (occurred_at);
CREATE INDEX IF NOT EXISTS events_request ON events (request_id);

CREATE TABLE IF NOT EXISTS request_facts (
    request_id          text NOT NULL,
    -- the creation time the request id carries: fixed from the first
    -- event on, so a fact never changes partition.
    created_at          timestamptz NOT NULL,
    hour_of_day         smallint NOT NULL, -- on Turkey's clock
    has_created         boolean NOT NULL,
    province            text COLLATE "C" NOT NULL,
    district            text COLLATE "C" NOT NULL,
    cell                text COLLATE "C" NOT NULL,
    service_type        text COLLATE "C" NOT NULL,
    vehicle_type        text COLLATE "C" NOT NULL,
    insurer             text COLLATE "C" NOT NULL,
    dest_province       text COLLATE "C" NOT NULL,
    dest_cell           text COLLATE "C" NOT NULL,
    status              text COLLATE "C" NOT NULL,
    status_at           timestamptz,
    assigned_at         timestamptz,
    arrived_at          timestamptz,
    completed_at        timestamptz,
    cancelled_at        timestamptz,
    time_to_assign_ms   bigint,
    time_to_arrive_ms   bigint,
    distance_km         double precision,
    eta_s               double precision,
    tow_distance_km     double precision,
    insurance_status    text COLLATE "C" NOT NULL,
    insurance_at        timestamptz,
    insurance_latency_ms bigint,
    insurance_flags     text NOT NULL,
    cancel_reason       text NOT NULL,
    cancelled_by        text NOT NULL,
    unfulfilled_reason  text NOT NULL,
    events              bigint NOT NULL,
    last_event_at       timestamptz,
    seq                 bigint NOT NULL,
    PRIMARY KEY (request_id, created_at)
) PARTITION BY RANGE (created_at);
-- Reports over part of a month, and the SLA report's arrivals.
CREATE INDEX IF NOT EXISTS request_facts_created ON request_facts (created_at);
CREATE INDEX IF NOT EXISTS request_facts_arrivals ON request_facts (created_at, insurer) INCLUDE (time_to_arrive_ms)
    WHERE time_to_arrive_ms IS NOT NULL;

CREATE TABLE IF NOT EXISTS insurer_calls (
    event_id   text NOT NULL,
    request_id text NOT NULL,
    insurer    text COLLATE "C" NOT NULL,
    called_at  timestamptz NOT NULL,
    latency_ms double precision NOT NULL,
    outcome    text NOT NULL,
    error_kind text NOT NULL,
    attempts   bigint NOT NULL,
    PRIMARY KEY (event_id, called_at)
) PARTITION BY RANGE (called_at);

-- Requests per UTC day, province, insurer, service type and status (see
-- warehouse.RollupKey): the requests report reads this instead of the
-- facts when it can. Kept exact by the loader, in the transaction that
-- changes the facts.
CREATE TABLE IF NOT EXISTS request_rollup_daily (
    day          date NOT NULL,
    province     text COLLATE "C" NOT NULL,
    insurer      text COLLATE "C" NOT NULL,
    service_type text COLLATE "C" NOT NULL,
    status       text COLLATE "C" NOT NULL,
    n            bigint NOT NULL,
    PRIMARY KEY (day, province, insurer, service_type, status)
);
