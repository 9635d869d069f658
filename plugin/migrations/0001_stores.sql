-- Stores (tenants) and their API keys.
CREATE TABLE stores (
    store_id         text PRIMARY KEY,
    name             text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    currency         text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    timezone         text NOT NULL,
    -- Standard Webhooks secret ("whsec_" + base64): HMAC needs the secret itself, so it cannot be hashed.
    webhook_secret   text NOT NULL,
    platform_secrets jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    key_id      text PRIMARY KEY,
    store_id    text NOT NULL REFERENCES stores (store_id) ON DELETE CASCADE,
    scope       text NOT NULL CHECK (scope IN ('storefront', 'marketer', 'channel', 'app')),
    -- sha256 of the whole key: keys are 256-bit random, so a fast hash is enough and lookups stay one probe.
    secret_hash bytea NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- Set when the key is rotated: it keeps working until then, so clients can switch without downtime.
    expires_at  timestamptz,
    revoked_at  timestamptz
);
CREATE INDEX api_keys_store_scope ON api_keys (store_id, scope);
