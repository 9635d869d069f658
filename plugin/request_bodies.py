"""How large a request body may be, and of what media type, checked before it is read.

Litestar refuses a body over the route's `request_max_body_size` as it streams it in; checking the
announced `Content-Length` first answers 413 before anything is read or any database connection
is taken. On the JSON API routes a `Content-Type` that is not JSON is 415 (none: read as JSON), and
text holding NUL, which PostgreSQL cannot store, is 422. Webhooks are not held to these: WooCommerce's
ping is a form body, a signed body that is not JSON is answered 400 after its signature is checked,
and their events are checked field by field (`loyalty.limits`).
"""

from __future__ import annotations

import re
from typing import Any

from litestar import Request
from litestar.exceptions import HTTPException
from litestar.status_codes import HTTP_413_REQUEST_ENTITY_TOO_LARGE, HTTP_415_UNSUPPORTED_MEDIA_TYPE

from loyalty.errors import InvalidInput
from plugin import metrics
from plugin.auth import WEBHOOK_PLATFORM

API_MAX_BODY_BYTES = 256 * 1024
"""JSON API routes: the largest legitimate body (a case with 10,000 characters of text, every one
escaped as a surrogate pair) is about 120 KiB."""
PROGRAM_MAX_BODY_BYTES = 1024 * 1024
"""The program document: tiers, rules and rewards with their product lists."""
WEBHOOK_MAX_BODY_BYTES = 8 * 1024 * 1024
"""Storefront webhooks: a Shopify or WooCommerce order with thousands of lines stays well under."""


# `\u0000` in a JSON string, unless its backslash is itself escaped (`\\u0000` is text).
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def is_json(content_type: str) -> bool:
    media_type = content_type.partition(";")[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


async def check_body(request: Request[Any, Any, Any]) -> None:
    """Router-wide `before_request`: 413 for an announced body over the route's limit, 415 for a
    JSON API route sent another media type. Runs after the guards, before the body is read."""
    handler = request.route_handler
    limit = handler.resolve_request_max_body_size()
    length = request.content_length
    if limit is not None and length is not None and length > limit:
        if platform := handler.opt.get(WEBHOOK_PLATFORM):
            metrics.webhook_rejected(platform, "too-large")
        raise HTTPException(
            status_code=HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            detail=f"the body is {length} bytes; this route accepts at most {limit}",
        )
    if "data" not in handler.parsed_fn_signature.parameters:
        return
    content_type = request.headers.get("content-type")
    if content_type and not is_json(content_type):
        raise HTTPException(
            status_code=HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            detail=f"the body must be application/json, not {content_type}",
        )
    # PostgreSQL stores no NUL in text or jsonb. Read here, the body is kept for decoding.
    if _NUL_ESCAPE.search(await request.body()):
        raise InvalidInput("text must not contain NUL (\\u0000)", field="body")
