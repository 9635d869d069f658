-- The loyalty core: program versions, members, orders, the points ledger and its lots,
-- tier history, the inbox of inbound events, redemptions, idempotency keys and the outbox.

-- One program document per store, versioned. stores.program_version names the live one and is
-- switched with a compare-and-set, which is what makes If-Match on PUT /v1/program safe.
CREATE TABLE programs (
    store_id   text NOT NULL REFERENCES stores (store_id) ON DELETE CASCADE,
    version    integer NOT NULL CHECK (version > 0),
    document   jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by text,
    PRIMARY KEY (store_id, version)
);
ALTER TABLE stores ADD COLUMN program_version integer NOT NULL DEFAULT 0;

CREATE TABLE members (
    store_id           text NOT NULL REFERENCES stores (store_id) ON DELETE CASCADE,
    customer_id        text NOT NULL,
    email              text,
    first_name         text,
    last_name          text,
    birthday           date,
    marketing_consent  boolean NOT NULL DEFAULT false,
    -- The platform's own updated_at of the newest customer snapshot applied: older ones are ignored.
    source_updated_at  timestamptz,
    tier_code          text NOT NULL,
    tier_since         timestamptz NOT NULL,
    -- When the member's metric first fell below their tier's threshold; a downgrade waits for the grace.
    below_since        timestamptz,
    -- The sum of the member's ledger entries, kept in the same transaction as the entries.
    -- Negative only as a debt: a reversal after the points were spent (see loyalty/ledger.py).
    balance            bigint NOT NULL DEFAULT 0,
    orders_count       integer NOT NULL DEFAULT 0,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    erased_at          timestamptz,
    PRIMARY KEY (store_id, customer_id)
);

CREATE TABLE orders (
    store_id         text NOT NULL,
    order_id         text NOT NULL,
    customer_id      text NOT NULL,
    currency         text NOT NULL,
    subtotal         bigint NOT NULL CHECK (subtotal >= 0),
    total            bigint NOT NULL CHECK (total >= 0),
    placed_at        timestamptz NOT NULL,
    status           text NOT NULL DEFAULT 'paid' CHECK (status IN ('paid', 'cancelled')),
    refunded         bigint NOT NULL DEFAULT 0 CHECK (refunded >= 0 AND refunded <= subtotal),
    -- Points in millionths: exact enough that partial refunds reverse in proportion without residue.
    micro_points     bigint NOT NULL DEFAULT 0,
    points           bigint NOT NULL DEFAULT 0,
    points_reversed  bigint NOT NULL DEFAULT 0 CHECK (points_reversed <= points),
    program_version  integer,
    tier_code        text,
    awarded          boolean NOT NULL DEFAULT true,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (store_id, order_id),
    FOREIGN KEY (store_id, customer_id) REFERENCES members (store_id, customer_id) ON DELETE CASCADE
);
CREATE INDEX orders_member ON orders (store_id, customer_id, placed_at DESC);

CREATE TABLE order_lines (
    store_id      text NOT NULL,
    order_id      text NOT NULL,
    line_id       text NOT NULL,
    product_id    text,
    sku           text,
    title         text,
    category      text,
    quantity      integer NOT NULL CHECK (quantity > 0),
    unit_price    bigint NOT NULL CHECK (unit_price >= 0),
    discount      bigint NOT NULL DEFAULT 0 CHECK (discount >= 0),
    micro_points  bigint NOT NULL DEFAULT 0,
    refunded_qty  integer NOT NULL DEFAULT 0 CHECK (refunded_qty >= 0 AND refunded_qty <= quantity),
    PRIMARY KEY (store_id, order_id, line_id),
    FOREIGN KEY (store_id, order_id) REFERENCES orders (store_id, order_id) ON DELETE CASCADE
);
CREATE INDEX order_lines_product ON order_lines (store_id, product_id);

CREATE TABLE refunds (
    store_id    text NOT NULL,
    order_id    text NOT NULL,
    refund_id   text NOT NULL,
    amount      bigint NOT NULL CHECK (amount >= 0),
    points      bigint NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (store_id, order_id, refund_id),
    FOREIGN KEY (store_id, order_id) REFERENCES orders (store_id, order_id) ON DELETE CASCADE
);

CREATE TABLE ledger_entries (
    entry_id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    store_id         text NOT NULL,
    customer_id      text NOT NULL,
    kind             text NOT NULL CHECK (kind IN ('earn', 'redeem', 'expire', 'reverse', 'adjust')),
    points           bigint NOT NULL,
    order_id         text,
    refund_id        text,
    redemption_id    text,
    -- Why: a sentence for people, the rules that applied and the program version that produced it.
    reason           text NOT NULL,
    rules            jsonb NOT NULL DEFAULT '[]'::jsonb,
    program_version  integer,
    expires_at       timestamptz,
    available_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (store_id, customer_id) REFERENCES members (store_id, customer_id) ON DELETE CASCADE
);
CREATE INDEX ledger_member ON ledger_entries (store_id, customer_id, entry_id DESC);

-- Earned points as lots. Spending and expiry consume lots nearest-expiry-first; `remaining` only falls.
CREATE TABLE point_lots (
    lot_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    store_id      text NOT NULL,
    customer_id   text NOT NULL,
    entry_id      bigint NOT NULL REFERENCES ledger_entries (entry_id) ON DELETE CASCADE,
    order_id      text,
    points        bigint NOT NULL CHECK (points > 0),
    remaining     bigint NOT NULL CHECK (remaining >= 0 AND remaining <= points),
    -- Pending points (program points.pending_days) cannot be spent before this.
    available_at  timestamptz NOT NULL,
    expires_at    timestamptz,
    FOREIGN KEY (store_id, customer_id) REFERENCES members (store_id, customer_id) ON DELETE CASCADE
);
CREATE INDEX point_lots_open ON point_lots (store_id, customer_id, expires_at) WHERE remaining > 0;
CREATE INDEX point_lots_expiring ON point_lots (expires_at) WHERE remaining > 0;

-- Which entry took how many points from which lot: the audit trail that no lot is consumed twice.
CREATE TABLE lot_consumptions (
    entry_id  bigint NOT NULL REFERENCES ledger_entries (entry_id) ON DELETE CASCADE,
    lot_id    bigint NOT NULL REFERENCES point_lots (lot_id) ON DELETE CASCADE,
    points    bigint NOT NULL CHECK (points > 0),
    PRIMARY KEY (entry_id, lot_id)
);

CREATE TABLE tier_changes (
    change_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    store_id         text NOT NULL,
    customer_id      text NOT NULL,
    from_tier        text,
    to_tier          text NOT NULL,
    reason           text NOT NULL,
    metric_value     bigint,
    program_version  integer,
    created_at       timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (store_id, customer_id) REFERENCES members (store_id, customer_id) ON DELETE CASCADE
);
CREATE INDEX tier_changes_member ON tier_changes (store_id, customer_id, change_id DESC);

-- Every inbound event, once: the unique key is what makes a redelivery a no-op.
CREATE TABLE inbox (
    store_id     text NOT NULL REFERENCES stores (store_id) ON DELETE CASCADE,
    source       text NOT NULL,
    event_id     text NOT NULL,
    event_type   text NOT NULL,
    outcome      text NOT NULL CHECK (outcome IN ('applied', 'duplicate', 'parked', 'ignored')),
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (store_id, source, event_id)
);

-- Events that arrived before what they refer to (a refund before its order); applied when it arrives.
CREATE TABLE parked_events (
    parked_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    store_id     text NOT NULL REFERENCES stores (store_id) ON DELETE CASCADE,
    order_id     text NOT NULL,
    event_type   text NOT NULL,
    payload      jsonb NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX parked_events_order ON parked_events (store_id, order_id);

CREATE TABLE redemptions (
    store_id       text NOT NULL,
    redemption_id  text NOT NULL,
    customer_id    text NOT NULL,
    reward_id      text NOT NULL,
    points         bigint NOT NULL CHECK (points > 0),
    voucher_code   text NOT NULL,
    value          bigint,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (store_id, redemption_id),
    FOREIGN KEY (store_id, customer_id) REFERENCES members (store_id, customer_id) ON DELETE CASCADE
);

-- Idempotency-Key replays: the same key answers the same response; a different body is refused.
CREATE TABLE idempotency_keys (
    store_id      text NOT NULL REFERENCES stores (store_id) ON DELETE CASCADE,
    scope         text NOT NULL,
    key           text NOT NULL,
    request_hash  bytea NOT NULL,
    status_code   integer NOT NULL,
    response      jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (store_id, scope, key)
);

-- Outbound events, written in the transaction of the change that caused them; delivered later.
CREATE TABLE outbox (
    event_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    store_id     text NOT NULL REFERENCES stores (store_id) ON DELETE CASCADE,
    customer_id  text,
    event_type   text NOT NULL,
    payload      jsonb NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outbox_store ON outbox (store_id, event_id);

-- The catalogue, from product events and backfill (and, without them, from order lines).
CREATE TABLE products (
    store_id           text NOT NULL REFERENCES stores (store_id) ON DELETE CASCADE,
    product_id         text NOT NULL,
    title              text,
    category           text,
    brand              text,
    price              bigint CHECK (price >= 0),
    tags               text[] NOT NULL DEFAULT '{}',
    consumable_days    integer CHECK (consumable_days > 0),
    active             boolean NOT NULL DEFAULT true,
    source_updated_at  timestamptz,
    updated_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (store_id, product_id)
);
