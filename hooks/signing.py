"""Webhook signatures: Standard Webhooks (https://www.standardwebhooks.com) and the plain body HMAC
that Shopify and WooCommerce use."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Mapping, Sequence

from loyalty.errors import PatronError

TOLERANCE_SECONDS = 300
SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret


class InvalidSignature(PatronError):
    status_code = 401
    code = "invalid-signature"
    title = "Invalid webhook signature"


def secret_key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def new_secret() -> str:
    """A fresh `whsec_` secret: 24 random bytes, base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def is_secret(value: str) -> bool:
    """Whether `value` is a usable Standard Webhooks secret: `whsec_` and base64 of 16 bytes or more."""
    if not value.startswith(SECRET_PREFIX):
        return False
    try:
        return len(base64.b64decode(value.removeprefix(SECRET_PREFIX), validate=True)) >= 16
    except (binascii.Error, ValueError):
        return False


def sign(secret: str, *, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` header value for a message."""
    mac = hmac.new(secret_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def verify(secret: str, *, headers: Mapping[str, str], body: bytes, now: float) -> str:
    """Check a delivery's signature and freshness; return its `webhook-id`.

    Several space-separated signatures may be sent (the sender rotating its secret); one valid
    `v1` signature suffices. Every comparison is constant-time.
    """
    msg_id = headers.get("webhook-id")
    timestamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not msg_id or not timestamp or not signatures:
        raise InvalidSignature("webhook-id, webhook-timestamp and webhook-signature headers are required")
    try:
        sent_at = int(timestamp)
    except ValueError:
        raise InvalidSignature("webhook-timestamp must be Unix seconds") from None
    if abs(now - sent_at) > TOLERANCE_SECONDS:
        raise InvalidSignature("webhook-timestamp is more than 5 minutes away from now")
    try:
        expected = sign(secret, msg_id=msg_id, timestamp=sent_at, body=body).encode()
    except (binascii.Error, ValueError):
        raise InvalidSignature("the store's webhook secret is not valid base64") from None
    valid = False
    for candidate in signatures.split():
        # No early exit: the time taken does not tell which candidate matched.
        valid |= hmac.compare_digest(candidate.encode(), expected)
    if not valid:
        raise InvalidSignature("no valid v1 signature for this body")
    return msg_id


def body_signature(key: bytes, body: bytes) -> str:
    """Base64 HMAC-SHA256 of the raw body: `X-Shopify-Hmac-Sha256` and `X-WC-Webhook-Signature`."""
    return base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode()


def verify_body(keys: Sequence[bytes], *, body: bytes, signature: str | None, header: str) -> None:
    """Accept the body when `signature` is its HMAC under any of `keys` (two during a rotation).

    Every key is tried, whichever matches: the time taken does not tell which one did.
    """
    if not signature:
        raise InvalidSignature(f"the {header} header is required")
    if not keys:
        raise InvalidSignature(f"the store has no secret to check {header} with")
    given = signature.strip().encode()
    valid = False
    for key in keys:
        valid |= hmac.compare_digest(given, body_signature(key, body).encode())
    if not valid:
        raise InvalidSignature(f"{header} does not match this body")
