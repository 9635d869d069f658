-- The member-facing API: member tokens, redemption lookups, idempotency key housekeeping.

-- Signs member tokens (loyalty/member_tokens.py). Its own secret rather than one derived from
-- webhook_secret: the storefront holds that one, and a leaked webhook secret must not mint tokens.
-- Replacing it revokes every member token of the store at once. 32 bytes from two v4 UUIDs
-- (gen_random_uuid draws from the strong random source): 244 random bits, no extension needed.
ALTER TABLE stores ADD COLUMN member_token_secret bytea NOT NULL
    DEFAULT decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex');

CREATE INDEX redemptions_member ON redemptions (store_id, customer_id, created_at DESC);
-- A voucher code identifies one redemption; the random part makes a clash all but impossible,
-- and this makes it impossible.
CREATE UNIQUE INDEX redemptions_voucher ON redemptions (store_id, voucher_code);

-- Keys are kept for a while, then purged by age.
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
