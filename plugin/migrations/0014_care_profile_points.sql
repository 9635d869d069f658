-- Care in the member's profile and ledger: open suggestions are part of the member view, so a care
-- action created or acted on bumps the member's version (the profile cache is keyed by it); and a
-- points gift is credited to the ledger once, with the care action pointing at its entry.

-- The ledger entry a points gift credited (null for every other action): set in the transaction that
-- created the action, so a gift is credited exactly once (loyalty/repository/care_actions.py).
ALTER TABLE care_actions ADD COLUMN entry_id bigint REFERENCES ledger_entries (entry_id) ON DELETE SET NULL;

-- A scan inserts actions for many members in one statement: touch them set-based, once per statement,
-- instead of one UPDATE of `members` per row. Members this transaction already bumped only get the
-- kind added to their change (as patron_touch_member does since 0013); the others are locked in key
-- order first, as every multi-member ledger change locks them, so two such transactions cannot deadlock.
CREATE FUNCTION patron_touch_members() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO member_changes AS c (store_id, customer_id, version, kinds)
    SELECT m.store_id, m.customer_id, m.version, ARRAY[TG_ARGV[0]]
    FROM members m JOIN (SELECT DISTINCT store_id, customer_id FROM touched) t USING (store_id, customer_id)
    WHERE m.version_tx = pg_current_xact_id()
    ON CONFLICT (store_id, customer_id, version) DO UPDATE SET kinds = c.kinds || EXCLUDED.kinds
        WHERE NOT (EXCLUDED.kinds[1] = ANY (c.kinds));
    PERFORM 1 FROM members m
    WHERE (m.store_id, m.customer_id) IN (SELECT store_id, customer_id FROM touched)
      AND m.version_tx IS DISTINCT FROM pg_current_xact_id()
    ORDER BY m.store_id, m.customer_id
    FOR NO KEY UPDATE;
    PERFORM set_config('patron.change_kind', TG_ARGV[0], true);
    UPDATE members m SET version_tx = m.version_tx
    FROM (SELECT DISTINCT store_id, customer_id FROM touched) t
    WHERE m.store_id = t.store_id AND m.customer_id = t.customer_id
      AND m.version_tx IS DISTINCT FROM pg_current_xact_id();
    PERFORM set_config('patron.change_kind', '', true);
    RETURN NULL;
END $$;

CREATE TRIGGER care_actions_touch AFTER INSERT ON care_actions REFERENCING NEW TABLE AS touched
    FOR EACH STATEMENT EXECUTE FUNCTION patron_touch_members('care');
-- Dismissed or acted on: the suggestion leaves the profile. Emission and attribution change nothing
-- the member sees (a deferred action appears at `deliver_after`, which the cache entry's
-- `valid_until` covers), so they do not touch the member.
CREATE TRIGGER care_actions_acted_touch AFTER UPDATE OF acted_at ON care_actions
    FOR EACH ROW WHEN (OLD.acted_at IS DISTINCT FROM NEW.acted_at)
    EXECUTE FUNCTION patron_touch_member('care');
