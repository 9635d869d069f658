"""Idempotency-Key for writes: the same key and body answer the same response, with one effect.

Any write can run through `once`: the key is claimed (a row inserted) before the write runs, and
the response is stored on that row in the same transaction as the write's effect. So:
- a retry with the same key and the same body gets the stored response and changes nothing;
- the same key with another body is refused (422 `idempotency-key-reused`);
- two concurrent first uses of a key cannot both run: the second waits on the first's row and
  then replays its response (or, had the first failed and rolled back, runs itself);
- a failed write stores nothing, so the client may retry it under the same key once the cause
  is fixed (for example after earning more points).

Keys are per store and per `scope` (the operation and its target, e.g. one member's
redemptions), so clients of different members cannot collide; they are kept a week
(the `idempotency.purge` job).
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar

import msgspec
from msgspec import Meta

from loyalty.errors import PatronError
from loyalty.repository import Connection
from loyalty.repository import idempotency as repo

T = TypeVar("T", bound=msgspec.Struct)

Key = Annotated[str, Meta(min_length=1, max_length=255)]


class IdempotencyKeyReused(PatronError):
    """The key was used before with a different request."""

    status_code = 422
    code = "idempotency-key-reused"
    title = "Idempotency-Key reused with a different request"


class IdempotencyKeyMissing(PatronError):
    """The write requires an Idempotency-Key header."""

    status_code = 400
    code = "idempotency-key-missing"
    title = "Idempotency-Key required"


def request_hash(request: Any) -> bytes:
    """A fingerprint of a request: its canonical JSON (Struct field order, so stable)."""
    return hashlib.sha256(msgspec.json.encode(request)).digest()


async def once(
    conn: Connection,
    *,
    store_id: str,
    scope: str,
    key: str | None,
    request: Any,
    run: Callable[[], Awaitable[T]],
    result_type: type[T],
    status_code: int = 201,
) -> tuple[T, bool]:
    """Run `run` once per key (no key: just run it); returns its result and whether it was replayed.

    Call inside the transaction that `run` writes in; the caller commits both or neither.
    """
    if key is None:
        return await run(), False
    fingerprint = request_hash(request)
    while not await repo.claim(conn, store_id=store_id, scope=scope, key=key, request_hash=fingerprint):
        stored = await repo.get(conn, store_id=store_id, scope=scope, key=key)
        if stored is None:
            continue  # purged between the two statements: claim it afresh
        if stored.request_hash != fingerprint:
            raise IdempotencyKeyReused(
                f"Idempotency-Key {key!r} was used with a different request; use a new key for a new request"
            )
        return msgspec.convert(stored.response, result_type), True
    result = await run()
    await repo.complete(
        conn,
        store_id=store_id,
        scope=scope,
        key=key,
        status_code=status_code,
        response=msgspec.to_builtins(result),
    )
    return result, False


async def purge(conn: Connection, *, before: datetime, limit: int) -> int:
    """Forget up to `limit` keys created before `before`; returns how many were removed."""
    return await repo.purge(conn, before=before, limit=limit)
