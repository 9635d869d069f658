-- A member touched again in the same transaction (an order writes the order, its ledger entry and
-- a tier change, each touching the member) was rewritten each time only to record one more kind.
-- Once this transaction has bumped the member's version, record the kind in member_changes
-- directly and leave the member row alone: one row version per member per transaction.
CREATE OR REPLACE FUNCTION patron_touch_member() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    target record;
    bumped bigint;
BEGIN
    IF TG_OP = 'DELETE' THEN target := OLD; ELSE target := NEW; END IF;
    SELECT version INTO bumped FROM members
    WHERE store_id = target.store_id AND customer_id = target.customer_id
      AND version_tx = pg_current_xact_id();
    IF FOUND THEN
        INSERT INTO member_changes AS c (store_id, customer_id, version, kinds)
        VALUES (target.store_id, target.customer_id, bumped, ARRAY[TG_ARGV[0]])
        ON CONFLICT (store_id, customer_id, version) DO UPDATE SET kinds = c.kinds || EXCLUDED.kinds
            WHERE NOT (EXCLUDED.kinds[1] = ANY (c.kinds));
        RETURN NULL;
    END IF;
    PERFORM set_config('patron.change_kind', TG_ARGV[0], true);
    UPDATE members SET version_tx = version_tx
    WHERE store_id = target.store_id AND customer_id = target.customer_id;
    PERFORM set_config('patron.change_kind', '', true);
    RETURN NULL;
END $$;
