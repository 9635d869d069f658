-- Ingestion writes the orders and ledger entries of a batch of members in one statement each
-- (loyalty/orders.py): touch their members once per statement, set-based (patron_touch_members,
-- 0014), rather than one trigger call and member lookup per row. Transition tables take one event
-- per trigger, so an order's updates and deletes keep the row trigger.
DROP TRIGGER orders_touch ON orders;
CREATE TRIGGER orders_touch_inserted AFTER INSERT ON orders REFERENCING NEW TABLE AS touched
    FOR EACH STATEMENT EXECUTE FUNCTION patron_touch_members('order');
CREATE TRIGGER orders_touch AFTER UPDATE OR DELETE ON orders
    FOR EACH ROW EXECUTE FUNCTION patron_touch_member('order');

DROP TRIGGER ledger_entries_touch ON ledger_entries;
CREATE TRIGGER ledger_entries_touch AFTER INSERT ON ledger_entries REFERENCING NEW TABLE AS touched
    FOR EACH STATEMENT EXECUTE FUNCTION patron_touch_members('points');

-- An order updates its member three times in one transaction (the profile from the order, the order
-- count, the balance). Only the first update of a transaction bumps the version and records the
-- change; the triggers' own test of that, in PL/pgSQL, cost a function call per update. As WHEN
-- conditions the later updates skip them without a call. (An UPDATE that sets no version keeps
-- the row's own, which is what the function assigned for those.)
DROP TRIGGER members_version ON members;
CREATE TRIGGER members_version_inserted BEFORE INSERT ON members
    FOR EACH ROW EXECUTE FUNCTION patron_member_version();
CREATE TRIGGER members_version BEFORE UPDATE ON members
    FOR EACH ROW WHEN (OLD.version_tx IS DISTINCT FROM pg_current_xact_id())
    EXECUTE FUNCTION patron_member_version();

DROP TRIGGER members_changed ON members;
CREATE TRIGGER members_changed_inserted AFTER INSERT ON members
    FOR EACH ROW EXECUTE FUNCTION patron_member_changed();
CREATE TRIGGER members_changed AFTER UPDATE ON members
    FOR EACH ROW WHEN (OLD.version IS DISTINCT FROM NEW.version)
    EXECUTE FUNCTION patron_member_changed();
