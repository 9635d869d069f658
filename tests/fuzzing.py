"""Schemathesis over Patron's whole OpenAPI document, through the tests' own httpx client.

Each operation gets its own Hypothesis run, of positive cases (valid by the document) and negative
ones (invalid by it), sent with a key of a scope the route admits (the operator token on operator
routes, a correct signature on webhooks, so that the payload itself is what is tested). Half the
cases use ids that exist (a member with points, its case, a webhook endpoint) so that they reach
past the 404. Every response is checked by schemathesis: no 5xx, and status code, content type,
headers and body as the document declares them; negative cases must be refused (4xx).

Hypothesis runs in a worker thread and hands each request to the tests' event loop, where the app,
its pool and the client live; schemathesis only generates cases and checks responses.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from litestar import Litestar
from litestar.routes import HTTPRoute
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from hooks import shopify, woocommerce
from hooks.signing import sign
from loyalty.stores import Scope, StoreCreated
from plugin.auth import EXCLUDE_FROM_AUTH, SCOPES
from tests.conftest import ADMIN, bearer, make_store
from tests.hooks.platforms import SHOPIFY_SECRET, WOO_SIGNING_KEY, hmac_b64, make_platform_store
from tests.members import new_member

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
REQUEST_TIMEOUT = 10.0
# The server-sent events never end; tests/plugin/test_api_member_data.py follows them.
NOT_FUZZED = "/v1/members/{cid}/events"
# The scope a route is called with when it admits several: the broadest first.
SCOPE_PREFERENCE = [Scope.marketer, Scope.channel, Scope.storefront, Scope.app]


@dataclass
class World:
    """What the cases act on: a store with platform secrets and its resources, and a second store
    for the operator routes (which rotate keys and secrets: never the ones the cases use)."""

    store: StoreCreated
    operator_store: StoreCreated
    ids: dict[str, str]
    """Path parameter name → an id that exists."""


async def make_world(client: httpx.AsyncClient) -> World:
    store = await make_platform_store(client)
    cid = await new_member(client, store, points=500)
    marketer, channel = bearer(store.api_keys["marketer"]), bearer(store.api_keys["channel"])
    case = await client.post(
        f"/v1/members/{cid}/cases",
        json={"channel": "web", "category": "delivery", "subject": "Late parcel", "body": "Where is it?"},
        headers=channel,
    )
    assert case.status_code == 201, case.text
    endpoint = await client.post(
        "/v1/webhook-endpoints",
        json={"url": "https://8.8.8.8/hooks", "events": ["points.changed"]},
        headers=marketer,
    )
    assert endpoint.status_code == 201, endpoint.text
    return World(
        store=store,
        operator_store=await make_store(client),
        ids={"cid": cid, "case_id": case.json()["case_id"], "endpoint_id": endpoint.json()["endpoint_id"]},
    )


@dataclass
class Report:
    operations: list[str] = field(default_factory=list)
    cases: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    sending: float = 0.0
    validating: float = 0.0

    def summary(self) -> str:
        idle = [label for label in self.operations if not self.cases[label]]
        return (
            f"{len(self.cases)} of {len(self.operations)} operations (none sent: {idle}), "
            f"{sum(self.cases.values())} cases, {len(self.failures)} failing; "
            f"statuses {dict(sorted(self.statuses.items()))}; "
            f"{self.sending:.1f}s sending, {self.validating:.1f}s validating"
        )


def _route_opts(app: Litestar) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method, route.path_format): handler.opt
        for route in app.routes
        if isinstance(route, HTTPRoute)
        for method, (handler, _) in route.route_handler_map.items()
    }


class Sender:
    """Turns a case into a request on the tests' loop, with credentials the route accepts."""

    def __init__(self, client: httpx.AsyncClient, app: Litestar, world: World) -> None:
        self.client = client
        self.world = world
        self.opts = _route_opts(app)
        self.loop = asyncio.get_running_loop()

    def _credentials(self, case: Any) -> dict[str, str]:
        path = case.operation.path
        if path.startswith("/v1/admin/"):
            return ADMIN
        opt = self.opts[(case.method.upper(), path)]
        if opt.get(EXCLUDE_FROM_AUTH):
            return {}
        scope = next(scope for scope in SCOPE_PREFERENCE if scope in opt[SCOPES])
        return bearer(self.world.store.api_keys[scope])

    def seed(self, case: Any) -> None:
        """Point the case at resources that exist (webhooks and operator routes: always)."""
        params = case.path_parameters or {}
        for name in params:
            if name == "store_id":
                admin = case.operation.path.startswith("/v1/admin/")
                params[name] = (self.world.operator_store if admin else self.world.store).store_id
            elif name in self.world.ids and case.method.upper() != "DELETE":
                params[name] = self.world.ids[name]

    def _sign(self, case: Any, headers: dict[str, str], body: bytes) -> None:
        """Replace the generated signature headers with correct ones; a header a negative case
        left out stays out."""
        present = {name.lower() for name in headers}
        platform = case.operation.path.split("/")[3]
        if platform == "standard":
            msg_id, now = "msg_" + hashlib.sha256(body).hexdigest()[:24], int(time.time())
            signature = sign(self.world.store.webhook_secret, msg_id=msg_id, timestamp=now, body=body)
            signed = {"webhook-id": msg_id, "webhook-timestamp": str(now), "webhook-signature": signature}
        elif platform == "shopify":
            signed = {shopify.SIGNATURE_HEADER: hmac_b64(SHOPIFY_SECRET.encode(), body)}
        else:
            signed = {woocommerce.SIGNATURE_HEADER: hmac_b64(WOO_SIGNING_KEY, body)}
        for name, value in signed.items():
            if name.lower() in present:
                headers.pop(next(header for header in headers if header.lower() == name.lower()))
                headers[name] = value

    def send(self, case: Any) -> httpx.Response:
        kwargs = case.as_transport_kwargs(base_url=str(self.client.base_url), headers=self._credentials(case))
        content: bytes | None = None
        if "json" in kwargs:
            content = json.dumps(kwargs.pop("json")).encode()
        elif "data" in kwargs:
            data = kwargs.pop("data")
            content = data.encode() if isinstance(data, str) else data
        headers = dict(kwargs.pop("headers"))
        if case.operation.path.startswith("/v1/hooks/"):
            self._sign(case, headers, content or b"")
        request = self.client.request(
            kwargs.pop("method"),
            kwargs.pop("url"),
            params=kwargs.pop("params"),
            headers=headers,
            content=content,
        )
        return asyncio.run_coroutine_threadsafe(
            asyncio.wait_for(request, REQUEST_TIMEOUT), self.loop
        ).result()


def fuzz(schema: Any, sender: Sender, *, max_examples: int, derandomize: bool, report: Report) -> None:
    """Every operation of `schema`, positive then negative cases; failures are collected, not raised."""
    for result in schema.exclude(path=NOT_FUZZED).get_all_operations():
        operation = result.ok()
        report.operations.append(operation.label)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            started = time.monotonic()
            run = _operation_test(
                operation, mode, sender, max_examples=max_examples, derandomize=derandomize, report=report
            )
            try:
                run()
            except Unsatisfiable:
                pass  # nothing to make invalid: no parameters, no body
            except (Exception, BaseExceptionGroup) as exc:
                report.failures.append(f"{operation.label} ({mode.value}): {exc}")
            report.seconds[f"{operation.label} ({mode.value})"] = time.monotonic() - started


def _operation_test(
    operation: Any,
    mode: GenerationMode,
    sender: Sender,
    *,
    max_examples: int,
    derandomize: bool,
    report: Report,
) -> Callable[[], None]:
    @settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        derandomize=derandomize,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
    )
    @given(case=operation.as_strategy(generation_mode=mode), seeded=st.booleans())
    def run(case: Any, seeded: bool) -> None:
        if seeded or case.operation.path.startswith(("/v1/hooks/", "/v1/admin/")):
            sender.seed(case)
        started = time.monotonic()
        response = sender.send(case)
        report.sending += time.monotonic() - started
        report.cases[operation.label] += 1
        report.statuses[response.status_code] += 1
        started = time.monotonic()
        case.validate_response(response, checks=CHECKS)
        report.validating += time.monotonic() - started

    return run


async def run_fuzz(
    client: httpx.AsyncClient, app: Litestar, *, max_examples: int, derandomize: bool
) -> Report:
    """Load the served document, make the world, fuzz every operation; the report of what ran.
    `derandomize`: the same cases every run (the default run), rather than new ones (the long run)."""
    document = (await client.get("/schema/openapi.json")).json()
    schema = schemathesis.openapi.from_dict(document)
    sender = Sender(client, app, await make_world(client))
    report = Report()
    await asyncio.to_thread(
        fuzz, schema, sender, max_examples=max_examples, derandomize=derandomize, report=report
    )
    return report
