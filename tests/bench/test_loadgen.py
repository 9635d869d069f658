"""The load generator frames responses correctly and counts what it sends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.bench.loadgen import ResponseError, build_request, parse_response, run_load

OK = b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 7\r\n\r\n{"a":1}'


class TestParseResponse:
    def test_frames_a_complete_response(self) -> None:
        assert parse_response(OK) == (200, len(OK))

    @pytest.mark.parametrize("cut", [0, 10, OK.index(b"\r\n\r\n") + 2, len(OK) - 1])
    def test_partial_response_is_none(self, cut: int) -> None:
        assert parse_response(OK[:cut]) is None

    def test_leaves_what_follows_the_body(self) -> None:
        assert parse_response(bytearray(OK + OK)) == (200, len(OK))

    def test_header_name_is_case_insensitive(self) -> None:
        response = b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\nX-Other: 9\r\n\r\n{}"
        assert parse_response(response) == (404, len(response))

    def test_length_of_another_header_is_not_taken(self) -> None:
        response = b"HTTP/1.1 200 OK\r\nx-content-length: 99\r\ncontent-length: 0\r\n\r\n"
        assert parse_response(response) == (200, len(response))

    def test_no_content_needs_no_length(self) -> None:
        response = b"HTTP/1.1 204 No Content\r\nx-request-id: 1\r\n\r\n"
        assert parse_response(response) == (204, len(response))

    @pytest.mark.parametrize(
        "response",
        [
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n{}",
            b"SSH-2.0-OpenSSH\r\n\r\n",
        ],
    )
    def test_unframeable_response_is_an_error(self, response: bytes) -> None:
        with pytest.raises(ResponseError):
            parse_response(response)

    def test_endless_head_is_an_error(self) -> None:
        with pytest.raises(ResponseError):
            parse_response(b"HTTP/1.1 200 OK\r\n" + b"x" * 70_000)


def test_build_request_frames_a_body() -> None:
    request = build_request("POST", "/x", host="h", headers={"A": "b"}, body=b"{}")
    assert request == b"POST /x HTTP/1.1\r\nHost: h\r\nA: b\r\nContent-Length: 2\r\n\r\n{}"


@pytest.fixture
async def counting_server() -> AsyncIterator[tuple[int, list[int]]]:
    """A keep-alive server answering every request with 200 (or 500 every tenth); counts requests."""
    seen = [0]

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.readuntil(b"\r\n\r\n"):
            seen[0] += 1
            status = b"500 Oops" if seen[0] % 10 == 0 else b"200 OK"
            writer.write(b"HTTP/1.1 " + status + b"\r\ncontent-length: 2\r\n\r\n{}")
            await writer.drain()

    async def guarded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await serve(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(guarded, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1], seen


@pytest.mark.bench
async def test_run_counts_every_response(counting_server: tuple[int, list[int]]) -> None:
    port, seen = counting_server
    request = build_request("GET", "/", host="127.0.0.1")
    result = await run_load("127.0.0.1", port, [request], connections=4, duration=5, max_requests=2000)
    assert result.requests == seen[0] == 2000
    assert result.statuses == {200: 1800, 500: 200}
    assert (result.ok, result.errors) == (1800, 200)
    assert 0 < result.p50_ms <= result.p99_ms <= result.max_ms


async def test_refuses_addresses_off_this_machine() -> None:
    with pytest.raises(ValueError, match="loopback"):
        await run_load("10.0.0.1", 80, [b"GET / HTTP/1.1\r\n\r\n"], connections=1, duration=0.1)
