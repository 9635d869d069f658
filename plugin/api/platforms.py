"""Operator endpoints (`PATRON_ADMIN_TOKEN`) for a store's storefront platforms: webhook secrets
with rotation, and WooCommerce REST credentials for reconciliation."""

from __future__ import annotations

from litestar import Controller, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody

from hooks import platforms
from hooks.platforms import PlatformSecretRotated, PlatformSecretRotation, WooCommerceApi, WooCommerceApiSaved
from hooks.store_cache import publish_change
from loyalty.repository import Connection
from plugin.auth import EXCLUDE_FROM_AUTH, operator_guard
from plugin.runtime import Runtime


class PlatformController(Controller):
    path = "/v1/admin/stores/{store_id:str}"
    guards = [operator_guard]  # noqa: RUF012
    opt = {EXCLUDE_FROM_AUTH: True}  # noqa: RUF012
    tags = ["operator"]  # noqa: RUF012

    @post("/platform-secrets", status_code=200, summary="Rotate a platform's webhook secret")
    async def rotate_secret(
        self,
        runtime: NamedDependency[Runtime],
        store_id: FromPath[str],
        data: JSONBody[PlatformSecretRotation],
    ) -> PlatformSecretRotated:
        """The new secret verifies webhooks at once; the one it replaces keeps verifying for
        `grace_seconds` (default 48 hours, 0 for not at all), so nothing signed before the switch
        is refused. At most two secrets are valid at any time. `standard` rotates the store's
        `whsec_` secret (Patron makes the new one unless given, and shows it only here)."""
        async with runtime.pool.acquire() as conn, conn.transaction():
            rotated = await platforms.rotate_secret(
                conn, store_id=store_id, rotation=data, now=runtime.clock()
            )
        # Committed: a row any process reads from now on has the new secrets.
        runtime.hook_stores.evict(store_id)
        await publish_change(runtime.redis, store_id)
        return rotated

    @put("/platform-api/woocommerce", summary="Set WooCommerce REST credentials")
    async def set_woocommerce_api(
        self, conn: NamedDependency[Connection], store_id: FromPath[str], data: JSONBody[WooCommerceApi]
    ) -> WooCommerceApiSaved:
        """Credentials `patron reconcile woocommerce` reads the shop's orders with (read access is
        enough). They replace any given before; the consumer secret is not shown again."""
        return await platforms.set_woocommerce_api(conn, store_id=store_id, api=data)
