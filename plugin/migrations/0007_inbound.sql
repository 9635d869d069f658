-- Inbound platform adapters (Shopify, WooCommerce): delivery ids on the inbox, rotated platform
-- secrets, and the REST credentials the WooCommerce reconciliation pulls orders with.

-- The platform's delivery id, kept for tracing. It is not the dedupe key: Shopify dedupes on its
-- event id with the topic, WooCommerce on the resource's state (see hooks/woocommerce.py).
ALTER TABLE inbox ADD COLUMN delivery_id text;

-- stores.platform_secrets holds each platform's current secret. Rotating one moves the old secret
-- here as {"<platform>": {"secret": ..., "valid_until": ...}}; signatures made with it are accepted
-- until valid_until, so deliveries signed before the switch (and their retries) still verify.
ALTER TABLE stores ADD COLUMN previous_platform_secrets jsonb NOT NULL DEFAULT '{}'::jsonb;

-- Per platform REST credentials, e.g. {"woocommerce": {"site_url", "consumer_key", "consumer_secret"}}.
-- Kept in clear like webhook_secret: HTTP basic auth needs the secret itself.
ALTER TABLE stores ADD COLUMN platform_api jsonb NOT NULL DEFAULT '{}'::jsonb;
