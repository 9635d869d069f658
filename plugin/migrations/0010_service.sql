-- Consistent service: member versions and the change feed, preferences with provenance,
-- service cases with SLA promises.

-- Every transaction that touches a member bumps members.version once (triggers below), so the
-- profile cache is keyed by a number PostgreSQL itself keeps: no write path can forget it, and a
-- crash between commit and a cache write cannot leave a stale profile behind.
ALTER TABLE members
    ADD COLUMN version bigint NOT NULL DEFAULT 0,
    -- The transaction that last bumped the version: later touches in the same one do not bump again.
    ADD COLUMN version_tx xid8,
    -- {"<key>": {"value", "channel", "actor", "occurred_at"}}; see loyalty/preferences.py.
    ADD COLUMN preferences jsonb NOT NULL DEFAULT '{}'::jsonb;

-- One row per member version: what kind of change made it. Written by the triggers in the same
-- transaction as the change, so `changes?since=N` is gap-free and exactly as durable as the data.
CREATE TABLE member_changes (
    store_id     text NOT NULL,
    customer_id  text NOT NULL,
    version      bigint NOT NULL,
    kinds        text[] NOT NULL,
    changed_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (store_id, customer_id, version)
);
CREATE INDEX member_changes_changed ON member_changes (changed_at);

CREATE FUNCTION patron_member_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.version_tx IS NOT DISTINCT FROM pg_current_xact_id() THEN
        NEW.version := OLD.version;
        NEW.version_tx := OLD.version_tx;
    ELSE
        NEW.version := (CASE WHEN TG_OP = 'UPDATE' THEN OLD.version ELSE 0 END) + 1;
        NEW.version_tx := pg_current_xact_id();
    END IF;
    RETURN NEW;
END $$;

-- AFTER, so that an INSERT ... ON CONFLICT DO NOTHING that inserted nothing records nothing.
CREATE FUNCTION patron_member_changed() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    kind text := coalesce(nullif(current_setting('patron.change_kind', true), ''), 'member');
BEGIN
    INSERT INTO member_changes AS c (store_id, customer_id, version, kinds)
    VALUES (NEW.store_id, NEW.customer_id, NEW.version, ARRAY[kind])
    ON CONFLICT (store_id, customer_id, version) DO UPDATE SET kinds = c.kinds || EXCLUDED.kinds
        WHERE NOT (EXCLUDED.kinds[1] = ANY (c.kinds));
    -- Delivered at commit only (and once per payload per transaction): the SSE relay's poke.
    PERFORM pg_notify('patron_member_changes', NEW.store_id || E'\t' || NEW.customer_id || E'\t' || NEW.version);
    RETURN NULL;
END $$;

CREATE TRIGGER members_version BEFORE INSERT OR UPDATE ON members
    FOR EACH ROW EXECUTE FUNCTION patron_member_version();
CREATE TRIGGER members_changed AFTER INSERT OR UPDATE ON members
    FOR EACH ROW EXECUTE FUNCTION patron_member_changed();

-- A change to a row that belongs to a member touches the member (TG_ARGV[0] names the kind).
CREATE FUNCTION patron_touch_member() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    target record;
BEGIN
    IF TG_OP = 'DELETE' THEN target := OLD; ELSE target := NEW; END IF;
    PERFORM set_config('patron.change_kind', TG_ARGV[0], true);
    UPDATE members SET version_tx = version_tx
    WHERE store_id = target.store_id AND customer_id = target.customer_id;
    PERFORM set_config('patron.change_kind', '', true);
    RETURN NULL;
END $$;

CREATE TRIGGER orders_touch AFTER INSERT OR UPDATE OR DELETE ON orders
    FOR EACH ROW EXECUTE FUNCTION patron_touch_member('order');
CREATE TRIGGER ledger_entries_touch AFTER INSERT ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION patron_touch_member('points');
CREATE TRIGGER point_lots_touch AFTER UPDATE ON point_lots
    FOR EACH ROW EXECUTE FUNCTION patron_touch_member('points');
CREATE TRIGGER redemptions_touch AFTER INSERT ON redemptions
    FOR EACH ROW EXECUTE FUNCTION patron_touch_member('redemption');
CREATE TRIGGER tier_changes_touch AFTER INSERT ON tier_changes
    FOR EACH ROW EXECUTE FUNCTION patron_touch_member('tier');

-- Every preference change as it arrived, applied or not (an older one than what is kept is not):
-- the member's timeline of who changed what, when, on which channel.
CREATE TABLE preference_changes (
    change_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    store_id     text NOT NULL,
    customer_id  text NOT NULL,
    key          text NOT NULL,
    value        jsonb NOT NULL,
    channel      text NOT NULL,
    actor        text NOT NULL,
    occurred_at  timestamptz NOT NULL,
    applied      boolean NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (store_id, customer_id) REFERENCES members (store_id, customer_id) ON DELETE CASCADE
);
CREATE INDEX preference_changes_member ON preference_changes (store_id, customer_id, change_id DESC);

-- Per store SLA policy (loyalty/sla.py has the defaults, used while a store has no row).
CREATE TABLE sla_policies (
    store_id    text PRIMARY KEY REFERENCES stores (store_id) ON DELETE CASCADE,
    policy      jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE cases (
    store_id                 text NOT NULL,
    case_id                  text NOT NULL,
    customer_id              text NOT NULL,
    channel                  text NOT NULL,
    subject                  text NOT NULL,
    category                 text NOT NULL,
    priority                 text NOT NULL CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    status                   text NOT NULL CHECK (status IN ('open', 'pending', 'resolved', 'closed')),
    opened_at                timestamptz NOT NULL,
    first_response_due       timestamptz NOT NULL,
    resolution_due           timestamptz NOT NULL,
    first_response_at        timestamptz,
    resolved_at              timestamptz,
    closed_at                timestamptz,
    -- Set once by the breach job (or at the late response/resolution), never cleared: a breach stays one.
    first_response_breached  boolean NOT NULL DEFAULT false,
    resolution_breached      boolean NOT NULL DEFAULT false,
    satisfaction_score       smallint CHECK (satisfaction_score BETWEEN 1 AND 5),
    satisfaction_comment     text,
    updated_at               timestamptz NOT NULL,
    PRIMARY KEY (store_id, case_id),
    FOREIGN KEY (store_id, customer_id) REFERENCES members (store_id, customer_id) ON DELETE CASCADE
);
CREATE INDEX cases_member ON cases (store_id, customer_id, opened_at DESC);
CREATE INDEX cases_unresolved ON cases (store_id, resolution_due) WHERE status IN ('open', 'pending');

CREATE TABLE case_events (
    event_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    store_id     text NOT NULL,
    case_id      text NOT NULL,
    customer_id  text NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('opened', 'note', 'response', 'status', 'satisfaction', 'breach')),
    channel      text NOT NULL,
    actor        text NOT NULL,
    body         text,
    status       text,
    created_at   timestamptz NOT NULL,
    FOREIGN KEY (store_id, case_id) REFERENCES cases (store_id, case_id) ON DELETE CASCADE
);
CREATE INDEX case_events_case ON case_events (store_id, case_id, event_id);

CREATE TRIGGER cases_touch AFTER INSERT OR UPDATE ON cases
    FOR EACH ROW EXECUTE FUNCTION patron_touch_member('case');
