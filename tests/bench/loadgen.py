"""A small closed-loop HTTP/1.1 load generator: N keep-alive connections, one request in flight on each.

Python HTTP clients spend more CPU per request than the server under test, and on a 2-core machine the
client competes with the server for the same cores. So this one does as little as it can per request:
requests are pre-encoded bytes written straight to the transport, responses are framed by their
`Content-Length` (no header parsing beyond the status and that), and everything runs in protocol
callbacks, without a coroutine or a future per request.

Loopback only, and bounded: every run stops after its duration (or request count) plus a grace period.
"""

from __future__ import annotations

import asyncio
import ipaddress
import math
import time
from array import array
from collections import Counter
from collections.abc import Sequence
from typing import cast

import msgspec

MAX_HEAD_BYTES = 64 * 1024
_HEAD_END = b"\r\n\r\n"
_CONTENT_LENGTH = b"\r\ncontent-length:"
_CHUNKED = b"\r\ntransfer-encoding:"
# A server that stops answering must not hold the run: in-flight requests count as timeouts after this.
STALL_GRACE_SECONDS = 5.0


class ResponseError(Exception):
    """The server sent something this client does not frame (no length, chunked, oversized head)."""


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_response(buffer: bytes | bytearray) -> tuple[int, int] | None:
    """Frame one HTTP/1.1 response at the start of `buffer`: `(status, bytes it spans)`, or None if partial.

    Only `Content-Length` framing is supported; a chunked or unframed body raises ResponseError.
    """
    end = buffer.find(_HEAD_END)
    if end < 0:
        if len(buffer) > MAX_HEAD_BYTES:
            raise ResponseError("response head larger than 64 KiB")
        return None
    if buffer[:5] != b"HTTP/":
        raise ResponseError(f"not an HTTP response: {bytes(buffer[:32])!r}")
    status = int(buffer[9:12])
    head = bytes(buffer[: end + 2]).lower()
    at = head.find(_CONTENT_LENGTH)
    if at >= 0:
        value_start = at + len(_CONTENT_LENGTH)
        length = int(head[value_start : head.index(b"\r\n", value_start)])
    elif status in (204, 304) or 100 <= status < 200:
        length = 0
    elif head.find(_CHUNKED) >= 0:
        raise ResponseError("chunked responses are not supported")
    else:
        raise ResponseError("response without Content-Length")
    total = end + len(_HEAD_END) + length
    return (status, total) if len(buffer) >= total else None


def build_request(
    method: str, path: str, *, host: str, headers: dict[str, str] | None = None, body: bytes = b""
) -> bytes:
    """Encode one keep-alive HTTP/1.1 request."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body or method in ("POST", "PUT", "PATCH"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def fetch(host: str, port: int, request: bytes, *, seconds: float = 10.0) -> tuple[int, bytes]:
    """Send one request on a fresh connection: `(status, body)`. For set-up and readiness, not load."""
    if not _is_loopback(host):
        raise ValueError(f"only loopback addresses, not {host!r}")
    async with asyncio.timeout(seconds):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(request)
            buffer = bytearray()
            while (framed := parse_response(buffer)) is None:
                chunk = await reader.read(65536)
                if not chunk:
                    raise ResponseError("connection closed before the response was complete")
                buffer += chunk
        finally:
            writer.close()
    status, size = framed
    return status, bytes(buffer[buffer.find(_HEAD_END) + len(_HEAD_END) : size])


class LoadResult(msgspec.Struct, kw_only=True):
    """What one load run measured. Latencies in milliseconds; throughput counts 2xx responses only."""

    connections: int
    seconds: float
    requests: int
    ok: int
    errors: int
    """Non-2xx responses, unframeable responses, lost connections and requests still open at the end."""
    statuses: dict[int, int]
    throughput: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    client_cpu: float
    """CPU this process used over the run, as a fraction of one core: what the client took from the server."""


class _Run:
    """State shared by the connections of one run; the protocol callbacks update it."""

    def __init__(self, requests: Sequence[bytes], *, measure_from: int, stop_at: int, limit: int | None):
        self.requests = requests
        self.next_request = 0
        self.measure_from = measure_from
        self.stop_at = stop_at
        self.limit = limit
        self.measured = 0
        self.latencies = array("q")
        self.statuses: Counter[int] = Counter()
        self.failures = 0
        self.last_done = measure_from
        self.open = 0
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def take_request(self, now: int) -> tuple[bytes, bool] | None:
        """The next request to send and whether it is measured, or None when the run is over."""
        if now >= self.stop_at or (self.limit is not None and self.measured >= self.limit):
            return None
        measured = now >= self.measure_from
        if measured:
            self.measured += 1
        request = self.requests[self.next_request % len(self.requests)]
        self.next_request += 1
        return request, measured

    def connection_done(self) -> None:
        self.open -= 1
        if self.open == 0 and not self.finished.done():
            self.finished.set_result(None)


class _Connection(asyncio.Protocol):
    def __init__(self, run: _Run) -> None:
        self.run = run
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.sent_at = 0
        self.measured = False
        self.done = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses; they have the same methods.
        self.transport = cast(asyncio.Transport, transport)
        self.send_next()

    def send_next(self) -> None:
        now = time.perf_counter_ns()
        taken = self.run.take_request(now)
        if taken is None:
            self.finish()
            return
        request, self.measured = taken
        self.sent_at = now
        assert self.transport is not None
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        try:
            framed = parse_response(self.buffer)
        except ResponseError:
            self.fail()
            return
        if framed is None:
            return
        now = time.perf_counter_ns()
        status, size = framed
        del self.buffer[:size]
        if self.measured:
            run = self.run
            run.latencies.append(now - self.sent_at)
            run.statuses[status] += 1
            run.last_done = now
        if self.buffer:
            # One request is in flight at a time, so bytes beyond its response are a protocol error.
            self.fail()
            return
        self.send_next()

    def fail(self) -> None:
        """The connection is unusable (bad response, lost, stalled): one error, and it stops."""
        if self.done:
            return
        self.run.failures += 1
        self.finish()

    def finish(self) -> None:
        if self.done:
            return
        self.done = True
        if self.transport is not None:
            self.transport.close()
        self.run.connection_done()

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail()


def _percentile(ordered: Sequence[int], fraction: float) -> float:
    if not ordered:
        return 0.0
    # Nearest rank: the smallest value with at least `fraction` of the samples at or below it.
    index = max(0, math.ceil(fraction * len(ordered)) - 1)
    return ordered[index] / 1e6


async def run_load(
    host: str,
    port: int,
    requests: Sequence[bytes],
    *,
    connections: int,
    duration: float,
    warmup: float = 0.0,
    max_requests: int | None = None,
) -> LoadResult:
    """Load `host:port` with `connections` keep-alive connections for `warmup + duration` seconds.

    Each connection sends the next of `requests` (cycling) as soon as the previous response arrives.
    Only requests sent after the warm-up count; `max_requests` ends the run early after that many.
    """
    if not _is_loopback(host):
        raise ValueError(f"the load generator only targets loopback addresses, not {host!r}")
    if not requests or connections < 1 or duration <= 0:
        raise ValueError("need at least one request, one connection and a positive duration")
    loop = asyncio.get_running_loop()
    cpu_start = time.process_time()
    start = time.perf_counter_ns()
    measure_from = start + int(warmup * 1e9)
    run = _Run(
        requests, measure_from=measure_from, stop_at=measure_from + int(duration * 1e9), limit=max_requests
    )
    run.open = connections
    protocols: list[_Connection] = []

    def protocol() -> _Connection:
        protocols.append(_Connection(run))
        return protocols[-1]

    results = await asyncio.gather(
        *(loop.create_connection(protocol, host, port) for _ in range(connections)), return_exceptions=True
    )
    for outcome in results:
        if isinstance(outcome, BaseException):
            run.failures += 1
            run.connection_done()
    try:
        await asyncio.wait_for(asyncio.shield(run.finished), warmup + duration + STALL_GRACE_SECONDS)
    except TimeoutError:
        for connection in protocols:
            connection.fail()
    cpu = (time.process_time() - cpu_start) / max((time.perf_counter_ns() - start) / 1e9, 1e-9)
    latencies = sorted(run.latencies)
    ok = sum(count for status, count in run.statuses.items() if 200 <= status < 300)
    seconds = max(run.last_done - measure_from, 1) / 1e9
    return LoadResult(
        connections=connections,
        seconds=round(seconds, 3),
        requests=len(latencies) + run.failures,
        ok=ok,
        errors=len(latencies) - ok + run.failures,
        statuses=dict(sorted(run.statuses.items())),
        throughput=round(ok / seconds, 1),
        p50_ms=round(_percentile(latencies, 0.50), 3),
        p90_ms=round(_percentile(latencies, 0.90), 3),
        p99_ms=round(_percentile(latencies, 0.99), 3),
        max_ms=round(latencies[-1] / 1e6, 3) if latencies else 0.0,
        mean_ms=round(sum(latencies) / len(latencies) / 1e6, 3) if latencies else 0.0,
        client_cpu=round(cpu, 2),
    )
