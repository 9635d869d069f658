"""Authentication: the key cache, revocations across processes, scope guards and the operator token."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import asyncpg
import pytest
from litestar import Litestar, get
from litestar.datastructures import State
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis

from loyalty import stores
from loyalty.stores import Principal, Scope, StoreCreated
from plugin import database
from plugin.app import create_app
from plugin.auth import KeyResolver, authenticate, requires
from plugin.rate_limits import RateLimiter
from plugin.runtime import Runtime
from plugin.settings import Settings
from tests.conftest import ADMIN, bearer, eventually, make_store
from tests.plugin.conftest import MARKETERS_ONLY, Client


@pytest.fixture
async def own_pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    """A pool the test may close, to prove a resolver no longer needs PostgreSQL."""
    assert settings.database_url is not None
    pool = await database.create_pool(settings.database_url, size=2)
    yield pool
    await pool.close()


@pytest.fixture
async def follower(runtime: Runtime) -> AsyncIterator[KeyResolver]:
    """A second process's key resolver, following the revocation feed."""
    resolver = KeyResolver(runtime.pool, ttl=60)
    task = asyncio.create_task(resolver.follow_revocations(runtime.redis))
    await asyncio.wait_for(resolver.following.wait(), 5)
    yield resolver
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def revoke_directly(runtime: Runtime, api_key: str) -> None:
    """Revoke a key in PostgreSQL alone, telling no cache: what a missed message looks like."""
    async with runtime.pool.acquire() as conn:
        await conn.execute(
            "UPDATE api_keys SET revoked_at = now() WHERE secret_hash = sha256(convert_to($1, 'UTF8'))",
            api_key,
        )


async def key_id(client: Client, api_key: str) -> str:
    response = await client.get("/v1/me", headers=bearer(api_key))
    assert response.status_code == 200, response.text
    value: str = response.json()["key_id"]
    return value


class GatedPool:
    """A pool whose connections, once used, are given back only when `gate` opens."""

    def __init__(self, pool: asyncpg.Pool, gate: asyncio.Event) -> None:
        self._pool = pool
        self._gate = gate

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[asyncpg.Connection]:
        async with self._pool.acquire() as conn:
            yield conn
            await self._gate.wait()


async def refuses(resolver: KeyResolver, api_key: str) -> bool:
    return await resolver.resolve(api_key) is None


class TestKeyResolver:
    async def test_a_known_key_resolves_once_from_postgresql(
        self, own_pool: asyncpg.Pool, store: StoreCreated
    ) -> None:
        resolver = KeyResolver(own_pool, ttl=60)
        first = await resolver.resolve(store.api_keys[Scope.channel])
        assert first is not None
        assert (first.store_id, first.scope) == (store.store_id, Scope.channel)
        await own_pool.close()
        assert await resolver.resolve(store.api_keys[Scope.channel]) == first

    async def test_an_unknown_key_is_cached_too(self, own_pool: asyncpg.Pool) -> None:
        resolver = KeyResolver(own_pool, ttl=60)
        assert await resolver.resolve("pk_app_never-issued") is None
        await own_pool.close()
        assert await resolver.resolve("pk_app_never-issued") is None

    async def test_the_cache_is_bounded(self, own_pool: asyncpg.Pool) -> None:
        resolver = KeyResolver(own_pool, ttl=60, max_size=3)
        keys = [f"pk_app_flood-{n}" for n in range(5)]
        for key in keys:
            assert await resolver.resolve(key) is None
        await own_pool.close()
        for key in keys[2:]:
            assert await resolver.resolve(key) is None
        for key in keys[:2]:
            with pytest.raises(asyncpg.InterfaceError, match="pool is closed"):
                await resolver.resolve(key)

    async def test_an_entry_is_asked_again_after_its_ttl(self, runtime: Runtime, store: StoreCreated) -> None:
        resolver = KeyResolver(runtime.pool, ttl=0)
        assert await resolver.resolve(store.api_keys[Scope.app]) is not None
        await revoke_directly(runtime, store.api_keys[Scope.app])
        assert await resolver.resolve(store.api_keys[Scope.app]) is None

    async def test_a_key_is_not_trusted_past_its_expiry(self, runtime: Runtime, store: StoreCreated) -> None:
        api_key = store.api_keys[Scope.storefront]
        async with runtime.pool.acquire() as conn:
            expires_in = await conn.fetchval(
                "UPDATE api_keys SET expires_at = now() + interval '0.3 seconds'"
                " WHERE secret_hash = sha256(convert_to($1, 'UTF8'))"
                " RETURNING extract(epoch FROM expires_at - clock_timestamp())::float8",
                api_key,
            )
        resolver = KeyResolver(runtime.pool, ttl=60)
        assert await resolver.resolve(api_key) is not None
        await asyncio.sleep(expires_in + 0.05)
        assert await resolver.resolve(api_key) is None

    async def test_a_revocation_reaches_another_process(
        self, client: Client, follower: KeyResolver, store: StoreCreated
    ) -> None:
        api_key = store.api_keys[Scope.marketer]
        assert await follower.resolve(api_key) is not None
        kid = await key_id(client, api_key)
        response = await client.delete(f"/v1/admin/stores/{store.store_id}/keys/{kid}", headers=ADMIN)
        assert response.status_code == 204
        assert await eventually(lambda: refuses(follower, api_key))

    async def test_revocations_missed_while_not_listening_are_not_trusted(
        self, runtime: Runtime, store: StoreCreated
    ) -> None:
        api_key = store.api_keys[Scope.channel]
        resolver = KeyResolver(runtime.pool, ttl=60)
        assert await resolver.resolve(api_key) is not None
        await revoke_directly(runtime, api_key)
        task = asyncio.create_task(resolver.follow_revocations(runtime.redis))
        try:
            await asyncio.wait_for(resolver.following.wait(), 5)
            assert await resolver.resolve(api_key) is None
        finally:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    async def test_a_lookup_overlapping_a_revocation_is_not_cached(
        self, runtime: Runtime, store: StoreCreated
    ) -> None:
        api_key = store.api_keys[Scope.app]
        gate = asyncio.Event()
        resolver = KeyResolver(GatedPool(runtime.pool, gate), ttl=60)  # type: ignore[arg-type]
        lookup = asyncio.create_task(resolver.resolve(api_key))
        await asyncio.sleep(0.1)  # the lookup has read the key as live and waits at the gate
        await revoke_directly(runtime, api_key)
        resolver.evict(stores.hash_key(api_key))
        gate.set()
        assert await lookup is not None  # it began before the revocation
        assert await resolver.resolve(api_key) is None


class TestMe:
    @pytest.mark.parametrize("scope", list(Scope))
    async def test_every_scope_key_authenticates(
        self, client: Client, store: StoreCreated, scope: Scope
    ) -> None:
        response = await client.get("/v1/me", headers=bearer(store.api_keys[scope]))
        assert response.status_code == 200
        body = response.json()
        assert (body["store_id"], body["scope"]) == (store.store_id, scope.value)
        assert body["key_id"].startswith("key_")

    async def test_a_key_never_shows_another_store(self, client: Client) -> None:
        stores = [await make_store(client, name=f"Shop {n}") for n in range(2)]
        seen: dict[str, str] = {}
        for store in stores:
            for api_key in store.api_keys.values():
                body = (await client.get("/v1/me", headers=bearer(api_key))).json()
                assert body["store_id"] == store.store_id
                seen[body["key_id"]] = body["store_id"]
        assert len(seen) == 8

    async def test_the_operator_token_is_not_an_api_key(self, client: Client) -> None:
        assert (await client.get("/v1/me", headers=ADMIN)).status_code == 401


def principal(scope: Scope) -> Principal:
    return Principal(store_id="st_test", scope=scope, key_id="key_test")


def connection_for(scope: Scope) -> Any:
    return SimpleNamespace(auth=principal(scope))


class TestRequires:
    @pytest.mark.parametrize("scope", list(Scope))
    async def test_a_guarded_route_answers_403_to_other_scopes(
        self, replica: Client, store: StoreCreated, scope: Scope
    ) -> None:
        response = await replica.get(MARKETERS_ONLY, headers=bearer(store.api_keys[scope]))
        if scope is Scope.marketer:
            assert response.status_code == 200
            assert response.json()["store_id"] == store.store_id
        else:
            assert response.status_code == 403
            assert response.json()["type"] == "urn:patron:problem:forbidden"

    async def test_a_guarded_route_answers_401_without_a_key(self, replica: Client) -> None:
        assert (await replica.get(MARKETERS_ONLY)).status_code == 401


class TestOperatorToken:
    @pytest.mark.parametrize(
        "headers",
        [{}, bearer("not-the-token"), bearer(""), {"Authorization": "test-admin-token"}],
        ids=["missing", "wrong", "empty", "no-scheme"],
    )
    async def test_anything_but_the_token_is_401(self, client: Client, headers: dict[str, str]) -> None:
        response = await client.post("/v1/admin/stores", json={"name": "Nope"}, headers=headers)
        assert response.status_code == 401
        assert response.json()["type"] == "urn:patron:problem:unauthenticated"

    async def test_an_api_key_is_not_the_operator_token(self, client: Client, store: StoreCreated) -> None:
        headers = bearer(store.api_keys[Scope.marketer])
        assert (
            await client.post("/v1/admin/stores", json={"name": "Nope"}, headers=headers)
        ).status_code == 401

    async def test_without_a_configured_token_operator_routes_are_off(self, replica: Client) -> None:
        response = await replica.post("/v1/admin/stores", json={"name": "Nope"}, headers=ADMIN)
        assert response.status_code == 401
        assert "PATRON_ADMIN_TOKEN is not set" in response.json()["detail"]


def test_no_guard_runs_in_a_thread() -> None:
    # Litestar runs a plain-function guard through sync_to_thread: a thread hop on every request.
    app = create_app(Settings(database_url="postgresql://unused", redis_url="redis://unused"))
    for route in app.routes:
        for handler in route.route_handlers:  # type: ignore[attr-defined]
            for guard in handler.resolve_guards():
                assert inspect.iscoroutinefunction(guard), f"{route.path}: {guard!r} is not async"


class _Keys:
    """Resolves a token naming a scope to a key of that scope."""

    async def resolve(self, token: str) -> Principal | None:
        return Principal(store_id="st_1", scope=Scope(token), key_id="key_1") if token in set(Scope) else None


@get("/marketing", opt=requires(Scope.marketer, Scope.channel), sync_to_thread=False)
def marketing() -> str:
    return "ok"


class TestRequiresOpt:
    @pytest.fixture
    async def client(self) -> AsyncIterator[AsyncTestClient[Litestar]]:
        # Limits off: the limiter never calls this Redis.
        limits = RateLimiter(Redis(), window=60, per_key=0, per_store=0, webhooks_per_store=0)
        patron = SimpleNamespace(keys=_Keys(), limits=limits)
        app = Litestar([marketing], guards=[authenticate], state=State({"patron": patron}))
        async with AsyncTestClient(app) as client:
            yield client

    @pytest.mark.parametrize(
        ("token", "status"),
        [("marketer", 200), ("channel", 200), ("app", 403), ("storefront", 403), ("x", 401)],
    )
    async def test_lets_through_the_named_scopes_only(
        self, client: AsyncTestClient[Litestar], token: str, status: int
    ) -> None:
        response = await client.get("/marketing", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == status
