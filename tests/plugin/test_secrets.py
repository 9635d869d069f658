"""Secrets stay out of the logs, whatever goes wrong; every comparison of one is constant-time."""

from __future__ import annotations

import ast
import base64
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from litestar import Litestar, Router, get
from litestar.datastructures import State

from loyalty.stores import Scope, StoreCreated
from plugin.auth import authenticate, requires
from plugin.errors import EXCEPTION_HANDLERS
from plugin.logs import JsonFormatter, TextFormatter
from plugin.runtime import Runtime
from tests.conftest import ADMIN, ADMIN_TOKEN, bearer, make_store
from tests.events import make_customer, make_order, signed_headers
from tests.hooks.platforms import hmac_b64

ROOT = Path(__file__).parents[2]
SHOPIFY = "shpss_log_probe_3f9a1c"
WOO = "wc_log_probe_7b2e4d"
CONSUMER_SECRET = "cs_log_probe_5d8c0a"


@get("/boom", opt=requires(Scope.marketer), sync_to_thread=False)
def boom() -> None:
    raise RuntimeError("the handler failed")


async def exercise(client: httpx.AsyncClient, runtime: Runtime) -> list[str]:
    """Drive everything that handles a secret, right and wrong; return every secret seen."""
    store = await make_store(client, platform_secrets={"shopify": SHOPIFY, "woocommerce": WOO})
    seen = [ADMIN_TOKEN, SHOPIFY, WOO, CONSUMER_SECRET, store.webhook_secret, *store.api_keys.values()]
    admin = f"/v1/admin/stores/{store.store_id}"
    # The operator: a near miss of the token, then rotations and credentials.
    assert (
        await client.post("/v1/admin/stores", json={}, headers=bearer(ADMIN_TOKEN + "x"))
    ).status_code == 401
    rotated = await client.post(f"{admin}/platform-secrets", json={"platform": "standard"}, headers=ADMIN)
    seen.append(rotated.json()["secret"])
    bad_secret = {"platform": "standard", "secret": store.webhook_secret + "*"}
    assert (await client.post(f"{admin}/platform-secrets", json=bad_secret, headers=ADMIN)).status_code == 422
    credentials = {
        "site_url": "https://shop.example",
        "consumer_key": "ck_1",
        "consumer_secret": CONSUMER_SECRET,
    }
    assert (
        await client.put(f"{admin}/platform-api/woocommerce", json=credentials, headers=ADMIN)
    ).status_code == 200
    key = await client.post(f"{admin}/keys", json={"scope": "channel"}, headers=ADMIN)
    seen.append(key.json()["api_key"])
    assert (await client.delete(f"{admin}/keys/{key.json()['key_id']}", headers=ADMIN)).status_code == 204
    assert (await client.get("/v1/me", headers=bearer(key.json()["api_key"]))).status_code == 401
    await webhooks(client, store)
    # Keys and member tokens, right and wrong.
    channel = bearer(store.api_keys[Scope.channel])
    token = (await client.post("/v1/members/c-logs/tokens", headers=channel)).json()["token"]
    seen.append(token)
    for wrong in (token[:-4] + "AAAA", token + "x", "pk_channel_" + "x" * 43, store.webhook_secret):
        assert (await client.get("/v1/members/c-logs", headers=bearer(wrong))).status_code == 401
    assert (await client.get("/v1/members/c-other", headers=bearer(token))).status_code == 404
    assert (await client.get("/v1/program", headers=bearer(token))).status_code == 403
    endpoint = {"url": "https://93.184.216.34/hooks", "events": ["points.changed"]}
    marketer = bearer(store.api_keys[Scope.marketer])
    created = await client.post("/v1/webhook-endpoints", json=endpoint, headers=marketer)
    seen.append(created.json()["secret"])
    await client.delete(f"/v1/webhook-endpoints/{created.json()['endpoint_id']}", headers=marketer)
    # An unexpected error while a key is in the request.
    failing = Litestar(
        [Router("/", route_handlers=[boom], guards=[authenticate], exception_handlers=EXCEPTION_HANDLERS)],
        state=State({"patron": runtime}),
        logging_config=None,
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=failing), base_url="http://t") as other:
        assert (await other.get("/boom", headers=marketer)).status_code == 500
    return seen


async def webhooks(client: httpx.AsyncClient, store: StoreCreated) -> None:
    """Each platform's webhook with a good signature, a wrong one, and the secret sent as the signature."""
    hooks = f"/v1/hooks/%s/{store.store_id}"
    body = msgspec.json.encode(
        {"type": "order.paid", "data": make_order(customer=make_customer(customer_id="c-logs"))}
    )
    for secret, status in (
        (store.webhook_secret, 200),
        ("whsec_" + base64.b64encode(b"w" * 24).decode(), 401),
    ):
        answer = await client.post(hooks % "standard", content=body, headers=signed_headers(secret, body))
        assert answer.status_code == status
    as_signature = signed_headers(store.webhook_secret, body) | {"webhook-signature": store.webhook_secret}
    assert (await client.post(hooks % "standard", content=body, headers=as_signature)).status_code == 401
    for platform, header, secret in (
        ("shopify", "X-Shopify-Hmac-Sha256", SHOPIFY),
        ("woocommerce", "X-WC-Webhook-Signature", WOO),
    ):
        topic = {"X-Shopify-Topic": "shop/update", "X-WC-Webhook-Topic": "coupon.updated"}
        for signature, status in ((hmac_b64(secret.encode(), b"{}"), 200), (secret, 401), ("", 401)):
            answer = await client.post(hooks % platform, content=b"{}", headers=topic | {header: signature})
            assert answer.status_code == status, answer.text


def revealing(secret: str) -> list[str]:
    """The secret, and the part of it that gives it away on its own."""
    if secret.startswith("mt_"):
        return [secret, secret.rpartition(".")[2]]  # a member token's MAC (its payload is no secret)
    parts = [secret]
    for prefix in ("whsec_", "pk_storefront_", "pk_marketer_", "pk_channel_", "pk_app_"):
        if secret.startswith(prefix):
            parts.append(secret.removeprefix(prefix)[:24])
    return parts


async def test_no_secret_is_ever_logged(
    client: httpx.AsyncClient, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG):
        seen = await exercise(client, runtime)
    lines = []
    for record in caplog.records:
        record.request_id = getattr(record, "request_id", None)
        lines += [TextFormatter().format(record), JsonFormatter().format(record), repr(record.args)]
    text = "\n".join(lines)
    # The logs were written: the unexpected error, with its traceback.
    assert "unhandled error on GET /boom" in text
    assert "RuntimeError: the handler failed" in text
    leaked = [part for secret in seen for part in revealing(secret) if part in text]
    assert leaked == []


def comparisons(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """`==` / `!=` with a side whose name says it holds a secret, signature, token or MAC."""
    words = ("secret", "signature", "token", "mac", "digest", "password", "api_key")
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and any(isinstance(op, ast.Eq | ast.NotEq) for op in node.ops):
            for side in (node.left, *node.comparators):
                name = ast.unparse(side).lower()
                if any(word in name for word in words) and not name.startswith(("'", '"')):
                    yield node.lineno, ast.unparse(node)


def test_secrets_are_never_compared_with_equality() -> None:
    """`==` can return at the first differing byte; `hmac.compare_digest` takes as long either way."""
    found: list[Any] = []
    for package in ("plugin", "hooks", "loyalty", "recommender"):
        for path in sorted((ROOT / package).rglob("*.py")):
            found += [(str(path.relative_to(ROOT)), *hit) for hit in comparisons(ast.parse(path.read_text()))]
    assert found == []
