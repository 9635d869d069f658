"""Sending one delivery attempt: the signed request, its outcome, and what happens next.

Standard Webhooks: `webhook-id` is the delivery's message id (the same on every attempt and
replay, so receivers can dedupe); `webhook-timestamp` and `webhook-signature` are made afresh for
each attempt. The body is `{"type", "timestamp", "data"}`, with `timestamp` the time the event
happened, so it is byte-identical on every attempt.

Success is a 2xx within the timeout. 410 Gone dead-letters the delivery and disables the
endpoint. Anything else is retried after `retry_schedule[n - 1]` seconds (±10% jitter, so the
retries of a burst do not arrive together) following attempt n, or later if the receiver's
`Retry-After` asks for more; the attempt after the last delay dead-letters. So a schedule of k
delays allows k + 1 attempts. Every attempt is recorded, whatever its outcome.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import random
import ssl
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, NamedTuple

import httpcore
import msgspec

from hooks import signing, targets
from hooks.repository import Pool
from hooks.repository import deliveries as repo
from hooks.repository import endpoints as endpoints_repo
from hooks.repository.deliveries import Claimed

log = logging.getLogger(__name__)

USER_AGENT = "Patron-Webhooks/1"
MAX_RETRY_AFTER_SECONDS = 86400.0
"""A receiver's Retry-After is honoured up to a day, so it cannot park a delivery for ever."""
_MAX_RESPONSE_BYTES = 64 * 1024
_encode = msgspec.json.Encoder().encode
# Jitter, not security: a predictable spread is fine.
_jitter = random.Random()  # noqa: S311


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Opens connections only to public addresses (unless private ones are allowed), checking the
    very addresses it connects to, so DNS changing after registration cannot redirect a request."""

    def __init__(self, *, allow_private: bool) -> None:
        self._inner = httpcore.AnyIOBackend()
        self._allow_private = allow_private

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if self._allow_private:
            return await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        addresses = await targets.resolve(host, port)
        targets.refuse_private(host, addresses)
        error: Exception = httpcore.ConnectError(f"{host} has no address")
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except httpcore.ConnectError as exc:
                error = exc
        raise error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise targets.UnsafeTarget("webhooks are not sent to unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


@dataclass(frozen=True)
class Response:
    status: int
    retry_after: str | None
    body: bytes


class Sender:
    """The HTTP client of one pump: pooled keep-alive connections through the guarded backend.
    Redirects are not followed (a 3xx is a failure): a redirect could point anywhere."""

    def __init__(self, *, allow_private: bool, timeout: float, max_connections: int) -> None:
        self.timeout = timeout
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl.create_default_context(),
            max_connections=max_connections,
            max_keepalive_connections=max_connections,
            keepalive_expiry=30.0,
            network_backend=GuardedBackend(allow_private=allow_private),
        )

    async def post(self, url: str, *, headers: dict[str, str], body: bytes) -> Response:
        """POST within the timeout (the whole exchange, not each read); raises on no response."""
        per_step = {
            "connect": self.timeout,
            "read": self.timeout,
            "write": self.timeout,
            "pool": self.timeout,
        }
        async with asyncio.timeout(self.timeout):
            async with self._pool.stream(
                "POST", url, headers=list(headers.items()), content=body, extensions={"timeout": per_step}
            ) as response:
                received = bytearray()
                async for chunk in response.aiter_stream():
                    received += chunk
                    if len(received) >= _MAX_RESPONSE_BYTES:
                        break
                retry_after = next(
                    (v.decode("latin-1") for k, v in response.headers if k.lower() == b"retry-after"), None
                )
                return Response(status=response.status, retry_after=retry_after, body=bytes(received))

    async def aclose(self) -> None:
        await self._pool.aclose()


def body_of(claimed: Claimed) -> bytes:
    """The webhook body: the same bytes on every attempt of a message."""
    timestamp = claimed.occurred_at.astimezone(UTC)
    return _encode({"type": claimed.event_type, "timestamp": timestamp, "data": claimed.payload})


def headers_of(claimed: Claimed, body: bytes, *, timestamp: int) -> dict[str, str]:
    """Standard Webhooks headers, signed afresh for this attempt."""
    signature = signing.sign(claimed.secret, msg_id=claimed.message_id, timestamp=timestamp, body=body)
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": claimed.message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }


def retry_after_seconds(value: str | None, *, now: float) -> float | None:
    """A `Retry-After` header as seconds from now: delay-seconds or an HTTP date; None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def next_delay(schedule: Sequence[int], attempt: int, *, retry_after: float | None) -> float | None:
    """Seconds until the next attempt after failed attempt number `attempt`; None: dead-letter."""
    if attempt > len(schedule):
        return None
    delay = schedule[attempt - 1] * _jitter.uniform(0.9, 1.1)
    if retry_after is not None and retry_after > delay:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER_SECONDS))
    return delay


@dataclass(frozen=True)
class Attempt:
    """What one attempt came to."""

    status_code: int | None
    error: str | None
    latency_ms: int
    retry_after: float | None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class Settled(NamedTuple):
    """An attempt and what followed it: `delivered`, a `retry` scheduled, or `dead` (dead-lettered)."""

    attempt: Attempt
    outcome: Literal["delivered", "retry", "dead"]


async def attempt(sender: Sender, claimed: Claimed) -> Attempt:
    """Send one attempt of a claimed delivery; never raises for the receiver's faults."""
    body = body_of(claimed)
    headers = headers_of(claimed, body, timestamp=int(time.time()))
    started = time.perf_counter()
    status: int | None = None
    error: str | None = None
    retry_after: float | None = None
    try:
        response = await sender.post(claimed.url, headers=headers, body=body)
    except TimeoutError:
        error = f"no response within {sender.timeout:g} s"
    except targets.UnsafeTarget as exc:
        error = f"refused: {exc}"
    except httpcore.TimeoutException as exc:
        error = f"timed out: {type(exc).__name__}"
    except Exception as exc:
        # Refused, reset, malformed answer, unusable URL…: whatever it was, the attempt is recorded
        # and retried on the schedule, never left to lapse its lease again and again unrecorded.
        error = f"{type(exc).__name__}: {exc}"[:500]
    else:
        status = response.status
        if not 200 <= status < 300:
            snippet = response.body[:300].decode("utf-8", "replace")
            error = f"HTTP {status}" + (f": {snippet}" if snippet else "")
        retry_after = retry_after_seconds(response.retry_after, now=time.time())
    latency_ms = round((time.perf_counter() - started) * 1000)
    return Attempt(status_code=status, error=error, latency_ms=latency_ms, retry_after=retry_after)


async def deliver(
    pool: Pool,
    sender: Sender,
    claimed: Claimed,
    *,
    worker: str,
    schedule: Sequence[int],
    now: datetime | None = None,
) -> Settled:
    """Attempt a claimed delivery and record the attempt with its consequence."""
    started_at = datetime.now(UTC)
    result = await attempt(sender, claimed)
    record = repo.AttemptRecord(
        delivery_id=claimed.delivery_id,
        worker=worker,
        series=claimed.series,
        attempt=claimed.attempts,
        started_at=started_at,
        status_code=result.status_code,
        latency_ms=result.latency_ms,
        error=result.error,
    )
    gone = result.status_code == 410
    delay = None
    if not (gone or result.succeeded):
        delay = next_delay(schedule, claimed.attempts, retry_after=result.retry_after)
    async with pool.acquire() as conn:
        if delay is not None:
            await repo.reschedule(conn, attempt=record, now=now, delay_seconds=delay)
            return Settled(result, "retry")
        status: Literal["delivered", "dead"] = "delivered" if result.succeeded else "dead"
        if claimed.customer_id is None and not gone:
            await repo.settle(conn, attempt=record, status=status, now=now)
            return Settled(result, status)
        async with conn.transaction():
            await repo.lock_for_completion(conn)
            await repo.settle(conn, attempt=record, status=status, now=now)
            if gone:
                reason = "the receiver answered 410 Gone"
                await endpoints_repo.disable(conn, endpoint_id=claimed.endpoint_id, reason=reason)
    if gone:
        log.warning("endpoint %s answered 410 Gone: disabled", claimed.endpoint_id)
    return Settled(result, status)
