"""What Patron's OpenAPI document says beyond what Litestar infers: every route's problem+json
answers, and the bodies and headers of the signed webhooks (whose handlers read raw bytes).

`document_problems` runs on each Patron route as it is registered (`PatronPlugin.receive_route`)
and declares the errors the route can answer from what it declares: a guard (401, 403), path
parameters (404), parameters or a body (400, 422), a body (413, 415); every route may answer 500.
Errors only some routes raise (409, 412, 428) are declared on the route with `problems(...)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import msgspec
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import ResponseSpec
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, Operation, Parameter, RequestBody, Schema
from litestar.routes import HTTPRoute

from hooks import shopify, woocommerce
from loyalty.events import EVENT_TYPES
from plugin.auth import EXCLUDE_FROM_AUTH, operator_guard
from plugin.errors import PROBLEM_MEDIA_TYPE, Problem

PROBLEMS = {
    400: "Malformed: the body is not JSON, or a header or parameter is unusable",
    401: "No valid credentials: an API key, member token, operator token or webhook signature",
    403: "The key's scope may not use this route",
    404: "No such resource in the caller's store",
    409: "The change conflicts with the resource's state",
    412: "`If-Match` names a version that is no longer current",
    413: "The body is larger than this route accepts",
    415: "The body is not JSON (`Content-Type` names another media type)",
    422: "A field is invalid; `errors[].field` names it",
    428: "`If-Match` is required",
    429: "Over the key's, member's or store's rate limit; retry after `Retry-After` seconds",
    500: "Something went wrong on Patron's side; quote `request_id`",
    503: "PostgreSQL cannot be reached; retry after `Retry-After` seconds (nothing was written)",
}


def problems(*statuses: int) -> dict[int, ResponseSpec]:
    """problem+json responses for `statuses`, for a route's `responses=`."""
    return {
        status: ResponseSpec(
            Problem, description=PROBLEMS[status], media_type=PROBLEM_MEDIA_TYPE, generate_examples=False
        )
        for status in statuses
    }


def takes_body(handler: HTTPRouteHandler) -> bool:
    """Whether the route reads a request body: a `data` parameter, or the raw `body` of a webhook."""
    parameters = handler.parsed_fn_signature.parameters
    return "data" in parameters or "body" in parameters


def _statuses(route: HTTPRoute, handler: HTTPRouteHandler) -> set[int]:
    statuses = {500, 503}
    webhook = "body" in handler.parsed_fn_signature.parameters
    if not handler.opt.get(EXCLUDE_FROM_AUTH):
        statuses |= {401, 403, 429}
    elif operator_guard in handler.resolve_guards() or webhook:
        statuses.add(401)  # the operator token, or a webhook's signature
    if webhook:
        statuses.add(429)  # a store's webhook budget (plugin/rate_limits.py)
    if route.path_parameters:
        statuses.add(404)
    parameters = set(handler.parsed_fn_signature.parameters) - set(handler.resolve_dependencies())
    if parameters or route.path_parameters:
        statuses |= {400, 422}
    if takes_body(handler):
        statuses |= {400, 413, 422}
    if "data" in handler.parsed_fn_signature.parameters:
        statuses.add(415)
    return statuses


def document_problems(route: HTTPRoute) -> None:
    """Declare the problem+json answers of every handler of a Patron route (see the module doc)."""
    for handler in route.route_handlers:
        declared = dict(handler.responses or {})
        handler.responses = problems(*sorted(_statuses(route, handler))) | declared


# --- Webhook bodies ---------------------------------------------------------------------------


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """msgspec's JSON Schema with its `$defs` inlined: a `#/$defs/...` reference inside the
    OpenAPI document would resolve against the document, not against this schema."""
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(definitions[ref.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    return cast(dict[str, Any], resolve(schema))


def _standard_body() -> dict[str, Any]:
    return {
        "oneOf": [
            {
                "type": "object",
                "properties": {
                    "type": {"const": name},
                    "data": _inline(msgspec.json.schema(kind)),
                },
                "required": ["type", "data"],
            }
            for name, kind in EVENT_TYPES.items()
        ]
    }


def _header(name: str, description: str, schema: Schema | None = None, *, required: bool = True) -> Parameter:
    return Parameter(
        name=name,
        param_in="header",
        required=required,
        description=description,
        schema=schema or Schema(type=OpenAPIType.STRING),
    )


def _topics(names: frozenset[str]) -> Schema:
    """Any topic: those listed are acted on, others acknowledged and ignored."""
    return Schema(
        any_of=[Schema(type=OpenAPIType.STRING, enum=sorted(names)), Schema(type=OpenAPIType.STRING)]
    )


WEBHOOKS: dict[str, tuple[dict[str, Any], list[Parameter]]] = {
    "standard": (
        _standard_body(),
        [
            _header("webhook-id", "The event's id: the same id is applied once"),
            _header("webhook-timestamp", "Unix seconds; more than 5 minutes away from now is refused"),
            _header("webhook-signature", "`v1,<base64 HMAC-SHA256>` with the store's `whsec_` secret"),
        ],
    ),
    "shopify": (
        {"description": "Shopify's REST Admin API payload (an object) for the topics Patron acts on"},
        [
            _header(
                shopify.SIGNATURE_HEADER, "Base64 HMAC-SHA256 of the body with the store's Shopify secret"
            ),
            _header(
                shopify.TOPIC_HEADER,
                "The topic; others than these are acknowledged and ignored",
                _topics(shopify.TOPICS),
            ),
            _header(shopify.EVENT_ID_HEADER, "The merchant action's id", required=False),
            _header(shopify.WEBHOOK_ID_HEADER, "The delivery's id", required=False),
        ],
    ),
    "woocommerce": (
        {"description": "WooCommerce's REST API snapshot (an object) for the topics Patron acts on"},
        [
            _header(
                woocommerce.SIGNATURE_HEADER,
                "Base64 HMAC-SHA256 of the body with the store's WooCommerce secret; absent only on the "
                "ping WooCommerce sends when a webhook is saved (a form body `webhook_id=N`, answered 200)",
                required=False,
            ),
            _header(
                woocommerce.TOPIC_HEADER,
                "The topic, e.g. `order.updated`; absent only on the ping",
                _topics(woocommerce.TOPICS),
                required=False,
            ),
            _header(woocommerce.DELIVERY_ID_HEADER, "The delivery's id", required=False),
        ],
    ),
}


def webhook_operation(platform: str) -> type[Operation]:
    """An `operation_class` for a webhook route: its JSON body and signature headers, which the
    handler reads raw (the signature covers the exact bytes) and Litestar cannot see."""
    body, headers = WEBHOOKS[platform]

    @dataclass
    class WebhookOperation(Operation):
        def __post_init__(self) -> None:
            self.request_body = RequestBody(
                content={"application/json": OpenAPIMediaType(schema=cast(Schema, body))}, required=True
            )
            self.parameters = [*headers, *(self.parameters or [])]

    return WebhookOperation
