"""A real webhook receiver for tests: a minimal HTTP/1.1 server on 127.0.0.1 (asyncio streams).

It records every request and answers as its `behaviour` says: per request, so a test can fail
some messages, hang, answer 410 or 429 with Retry-After. It can be stopped and started again on
the same port (a receiver that is down, then up).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec

from hooks.signing import verify
from tests.loopback import HOST, LoopbackServer


@dataclass(frozen=True)
class Answer:
    """How to answer one request."""

    status: int = 200
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False


OK = Answer()


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    """Wall-clock time the request was fully read (time.time())."""
    status: int | None = None
    """What the receiver answered (None: not yet, or it hung)."""

    @property
    def message_id(self) -> str:
        return self.headers["webhook-id"]

    def json(self) -> Any:
        return msgspec.json.decode(self.body)

    def verify(self, secret: str) -> str:
        return verify(secret, headers=self.headers, body=self.body, now=time.time())


Behaviour = Callable[["Request"], Answer]


class Receiver(LoopbackServer):
    def __init__(self, behaviour: Behaviour | None = None) -> None:
        super().__init__()
        self.behaviour: Behaviour = behaviour or (lambda _: OK)
        self.requests: list[Request] = []
        self.in_flight: Counter[str] = Counter()
        self.max_in_flight_per_message = 0
        self._changed = asyncio.Condition()

    def url(self, path: str = "hook") -> str:
        return f"http://{HOST}:{self.port}/{path}"

    def answered(self, status: int = 200, path: str | None = None) -> list[Request]:
        return [r for r in self.requests if r.status == status and (path is None or r.path == "/" + path)]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Wait until `predicate()` holds, checked after each request."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(predicate)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await self._read(reader)
                if request is None:
                    return
                await self._answer(request, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            return

    async def _read(self, reader: asyncio.StreamReader) -> Request | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None
        lines = head.decode("latin-1").split("\r\n")
        path = lines[0].split(" ")[1]
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        return Request(path=path, headers=headers, body=body, at=time.time())

    async def _answer(self, request: Request, writer: asyncio.StreamWriter) -> None:
        await self._record(request)
        answer = self.behaviour(request)
        message_id = request.headers.get("webhook-id", "")
        self.in_flight[message_id] += 1
        self.max_in_flight_per_message = max(self.max_in_flight_per_message, self.in_flight[message_id])
        try:
            if answer.hang:
                await asyncio.sleep(3600)
            if answer.delay:
                await asyncio.sleep(answer.delay)
        finally:
            self.in_flight[message_id] -= 1
        extra = "".join(f"{name}: {value}\r\n" for name, value in answer.headers.items())
        head = f"HTTP/1.1 {answer.status} Answer\r\ncontent-length: 2\r\n{extra}\r\n"
        writer.write(head.encode("latin-1") + b"ok")
        await writer.drain()
        request.status = answer.status
        async with self._changed:
            self._changed.notify_all()

    async def _record(self, request: Request) -> None:
        async with self._changed:
            self.requests.append(request)
            self._changed.notify_all()
