-- Outbound webhooks: the endpoints a store registers, one delivery per outbox event and endpoint,
-- and one row per attempt. See hooks/outbox.py (fan-out) and hooks/delivery.py (sending).

CREATE TABLE webhook_endpoints (
    endpoint_id      text PRIMARY KEY,
    store_id         text NOT NULL REFERENCES stores (store_id) ON DELETE CASCADE,
    url              text NOT NULL,
    events           text[] NOT NULL CHECK (cardinality(events) > 0),
    description      text,
    -- Standard Webhooks secret ("whsec_" + base64): HMAC needs the secret itself, so it cannot be hashed.
    secret           text NOT NULL,
    enabled          boolean NOT NULL DEFAULT true,
    -- Why Patron disabled it (a 410 from the receiver); NULL when enabled or disabled by the store.
    disabled_reason  text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_store ON webhook_endpoints (store_id, created_at, endpoint_id);

-- Fan-out progress: a row is fanned out once, in event_id order, by one worker at a time.
ALTER TABLE outbox ADD COLUMN fanned_out_at timestamptz;
UPDATE outbox SET fanned_out_at = created_at;
CREATE INDEX outbox_unfanned ON outbox (event_id) WHERE fanned_out_at IS NULL;

-- Wake the delivery pumps when an outbox row commits (NOTIFY is delivered on commit only).
-- Per statement, and PostgreSQL folds equal notifications of one transaction into one.
CREATE FUNCTION patron_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('patron_outbox', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER outbox_notify AFTER INSERT ON outbox FOR EACH STATEMENT EXECUTE FUNCTION patron_outbox_notify();

CREATE TABLE deliveries (
    delivery_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    store_id         text NOT NULL REFERENCES stores (store_id) ON DELETE CASCADE,
    endpoint_id      text NOT NULL REFERENCES webhook_endpoints (endpoint_id) ON DELETE CASCADE,
    event_id         bigint NOT NULL REFERENCES outbox (event_id) ON DELETE CASCADE,
    -- The Standard Webhooks `webhook-id`: one per outbox event, the same on every attempt and replay.
    message_id       text NOT NULL,
    event_type       text NOT NULL,
    -- The ordering key: an endpoint hears of one member in event_id order. NULL: no order to keep.
    customer_id      text,
    -- pending: not tried yet (or replayed); failed: tried, a retry is scheduled; delivered; dead.
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'failed', 'delivered', 'dead')),
    -- A hint that no earlier undelivered delivery of this endpoint and member exists, so the claim
    -- scans only queue heads. The claim re-checks the real rule; see hooks/repository/deliveries.py.
    ready            boolean NOT NULL,
    -- Attempts within the current series; a replay starts a new series.
    attempts         integer NOT NULL DEFAULT 0,
    series           integer NOT NULL DEFAULT 1,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    -- The lease: a worker that dies mid-delivery loses it and another takes the delivery.
    locked_by        text,
    locked_until     timestamptz,
    last_status_code integer,
    last_error       text,
    delivered_at     timestamptz,
    dead_at          timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (endpoint_id, event_id)
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at, delivery_id)
    WHERE ready AND status IN ('pending', 'failed');
CREATE INDEX deliveries_queue ON deliveries (endpoint_id, customer_id, event_id)
    WHERE status IN ('pending', 'failed');
CREATE INDEX deliveries_store ON deliveries (store_id, delivery_id DESC);
CREATE INDEX deliveries_store_status ON deliveries (store_id, status, delivery_id DESC);

CREATE TABLE delivery_attempts (
    attempt_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id  bigint NOT NULL REFERENCES deliveries (delivery_id) ON DELETE CASCADE,
    series       integer NOT NULL,
    attempt      integer NOT NULL,
    started_at   timestamptz NOT NULL,
    -- NULL when no response came (refused, timed out, target not allowed).
    status_code  integer,
    latency_ms   integer NOT NULL,
    error        text,
    worker       text NOT NULL
);
CREATE INDEX delivery_attempts_delivery ON delivery_attempts (delivery_id, attempt_id);
