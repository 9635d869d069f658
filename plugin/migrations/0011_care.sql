-- Care: surprise gifts and proactive suggestions, one row per action (loyalty/care.py).

-- The unique key (store, member, trigger, period) is the idempotency of the scan: a second scan,
-- or two at once, inserts nothing the first one did (ON CONFLICT DO NOTHING).
CREATE TABLE care_actions (
    action_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    store_id       text NOT NULL,
    customer_id    text NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('gift', 'suggestion')),
    trigger        text NOT NULL,
    period_key     text NOT NULL,
    gift           jsonb,
    product_ids    text[] NOT NULL DEFAULT '{}',
    reason         text NOT NULL,
    message        text NOT NULL,
    -- Minor units charged to the store's gift budget of `budget_month` (the store-local month).
    cost           bigint NOT NULL DEFAULT 0 CHECK (cost >= 0),
    budget_month   date NOT NULL,
    -- Quiet hours: the outbox row is written once this has passed (by the scan or the next one).
    deliver_after  timestamptz NOT NULL,
    emitted_at     timestamptz,
    expires_at     timestamptz,
    acted_at       timestamptz,
    outcome        text CHECK (outcome IN ('acted', 'dismissed')),
    -- Attribution: the member's first paid order within 14 days of delivery.
    order_id       text,
    created_at     timestamptz NOT NULL,
    UNIQUE (store_id, customer_id, trigger, period_key),
    FOREIGN KEY (store_id, customer_id) REFERENCES members (store_id, customer_id) ON DELETE CASCADE
);
CREATE INDEX care_actions_member ON care_actions (store_id, customer_id, created_at DESC);
CREATE INDEX care_actions_budget ON care_actions (store_id, budget_month) WHERE cost > 0;
CREATE INDEX care_actions_undelivered ON care_actions (store_id, deliver_after) WHERE emitted_at IS NULL;

-- When each store was last scanned: `tier_welcome` looks at upgrades since then.
CREATE TABLE care_scans (
    store_id      text PRIMARY KEY REFERENCES stores (store_id) ON DELETE CASCADE,
    last_scan_at  timestamptz NOT NULL
);

-- The day a yearly date (birthday, membership anniversary) falls on in year `y`. Feb 29 falls on
-- Feb 28 in non-leap years, so leap-day members are greeted every year, never on March 1.
CREATE FUNCTION care_yearly_date(d date, y integer) RETURNS date
LANGUAGE sql IMMUTABLE PARALLEL SAFE
RETURN CASE WHEN extract(month FROM d) = 2 AND extract(day FROM d) = 29
            THEN make_date(y, 3, 1) - 1
            ELSE make_date(y, extract(month FROM d)::int, extract(day FROM d)::int) END;

-- Service cases resolved in (since, until] that earn a recovery gift (a breached promise or a
-- high priority). The cases migration replaces this stand-in (CREATE OR REPLACE, same signature)
-- with a query over its table; created only if absent, so this never overwrites the real one.
DO $$
BEGIN
    IF to_regprocedure('resolved_cases_for_recovery(text, timestamptz, timestamptz)') IS NULL THEN
        CREATE FUNCTION resolved_cases_for_recovery(p_store_id text, p_since timestamptz, p_until timestamptz)
        RETURNS TABLE (customer_id text, case_id text, resolved_at timestamptz, reason text)
        LANGUAGE sql STABLE
        AS 'SELECT NULL::text, NULL::text, NULL::timestamptz, NULL::text WHERE false';
    END IF;
END
$$;
