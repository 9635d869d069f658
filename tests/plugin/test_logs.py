"""Logging: JSON lines with the request id and extras, and the request id header."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar, get
from litestar.testing import AsyncTestClient

from plugin.errors import EXCEPTION_HANDLERS
from plugin.logs import JsonFormatter, RequestIdMiddleware, configure_logging, request_id
from plugin.settings import Settings

log = logging.getLogger("tests.logs")


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """configure_logging owns the root logger; put it back as the test found it."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def json_lines(err: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in err.splitlines() if line.startswith("{")]


def make_record(**extra: Any) -> logging.LogRecord:
    return logging.makeLogRecord(
        {"name": "tests.logs", "levelno": 20, "levelname": "INFO", "msg": "hi %s"} | extra
    )


@get("/log", sync_to_thread=False)
def log_something() -> dict[str, str]:
    log.info("inside", extra={"order_id": "o-1"})
    return {"ok": "yes"}


@get("/boom", sync_to_thread=False)
def boom() -> None:
    raise RuntimeError("secret internals")


@pytest.fixture(scope="module")
async def bare() -> AsyncIterator[AsyncTestClient[Litestar]]:
    """A bare app with the request id middleware and Patron's error handlers, no database."""
    app = Litestar(
        route_handlers=[log_something, boom],
        middleware=[RequestIdMiddleware],
        exception_handlers=EXCEPTION_HANDLERS,
        logging_config=None,
    )
    async with AsyncTestClient(app) as client:
        yield client


class TestJsonFormatter:
    def test_a_line_carries_the_basics_the_request_id_and_extras(self) -> None:
        record = make_record(args=("there",), request_id="rid-1", order_id="o-1", points=5)
        entry = json.loads(JsonFormatter().format(record))
        assert entry.pop("time").endswith("+00:00")
        assert entry == {
            "level": "info",
            "logger": "tests.logs",
            "message": "hi there",
            "request_id": "rid-1",
            "order_id": "o-1",
            "points": 5,
        }

    def test_no_request_id_outside_a_request(self) -> None:
        entry = json.loads(JsonFormatter().format(make_record(args=("x",), request_id=None)))
        assert "request_id" not in entry

    def test_an_exception_is_included(self) -> None:
        try:
            raise ValueError("bad thing")
        except ValueError:
            record = make_record(args=("x",), exc_info=sys.exc_info())
        entry = json.loads(JsonFormatter().format(record))
        assert "ValueError: bad thing" in entry["exception"]

    def test_an_extra_json_cannot_hold_is_written_as_text(self) -> None:
        entry = json.loads(JsonFormatter().format(make_record(args=("x",), path=Path("/srv/patron"))))
        assert entry["path"] == "/srv/patron"


@pytest.mark.usefixtures("restore_logging")
class TestConfigureLogging:
    def test_json_lines_on_stderr_at_the_configured_level(self, capsys: pytest.CaptureFixture[str]) -> None:
        configure_logging(Settings(log_format="json", log_level="WARNING"))
        log.info("quiet")
        log.warning("loud", extra={"store_id": "st_1"})
        [entry] = json_lines(capsys.readouterr().err)
        assert (entry["message"], entry["level"], entry["store_id"]) == ("loud", "warning", "st_1")

    def test_text_lines_show_the_request_id(self, capsys: pytest.CaptureFixture[str]) -> None:
        configure_logging(Settings(log_format="text"))
        token = request_id.set("rid-text")
        try:
            log.info("hello")
        finally:
            request_id.reset(token)
        assert "INFO    tests.logs [rid-text] hello" in capsys.readouterr().err

    def test_the_embedded_servers_are_quiet(self) -> None:
        configure_logging(Settings(log_level="DEBUG"))
        assert logging.getLogger("pgserver").getEffectiveLevel() == logging.WARNING

    async def test_every_line_in_a_request_carries_its_id(
        self, bare: AsyncTestClient[Litestar], capsys: pytest.CaptureFixture[str]
    ) -> None:
        configure_logging(Settings(log_format="json"))
        response = await bare.get("/log", headers={"X-Request-Id": "req-42"})
        assert response.headers["x-request-id"] == "req-42"
        [entry] = [e for e in json_lines(capsys.readouterr().err) if e["logger"] == "tests.logs"]
        assert (entry["message"], entry["request_id"], entry["order_id"]) == ("inside", "req-42", "o-1")

    async def test_an_unexpected_error_is_logged_with_the_id_and_answered_without_internals(
        self, bare: AsyncTestClient[Litestar], capsys: pytest.CaptureFixture[str]
    ) -> None:
        configure_logging(Settings(log_format="json"))
        response = await bare.get("/boom")
        assert response.status_code == 500
        problem = response.json()
        assert problem["type"] == "urn:patron:problem:internal"
        assert problem["request_id"] == response.headers["x-request-id"]
        assert "secret internals" not in response.text
        [entry] = [e for e in json_lines(capsys.readouterr().err) if e["level"] == "error"]
        assert entry["request_id"] == response.headers["x-request-id"]
        assert "RuntimeError: secret internals" in entry["exception"]


class TestRequestIdHeader:
    async def test_a_given_id_is_echoed(self, bare: AsyncTestClient[Litestar]) -> None:
        response = await bare.get("/log", headers={"X-Request-Id": "from-the-edge-proxy"})
        assert response.headers["x-request-id"] == "from-the-edge-proxy"

    @pytest.mark.parametrize("given", ["", "x" * 129, "spaces are\tfine but tabs are not"])
    async def test_an_unusable_id_is_replaced(self, bare: AsyncTestClient[Litestar], given: str) -> None:
        response = await bare.get("/log", headers={"X-Request-Id": given})
        made = response.headers["x-request-id"]
        assert made != given
        assert len(made) == 16
        int(made, 16)

    async def test_each_request_gets_its_own_id(self, bare: AsyncTestClient[Litestar]) -> None:
        ids = {(await bare.get("/log")).headers["x-request-id"] for _ in range(3)}
        assert len(ids) == 3

    @pytest.mark.parametrize(
        ("method", "path", "status"),
        [("GET", "/v1/me", 401), ("GET", "/v1/nowhere", 404), ("DELETE", "/health", 405)],
    )
    async def test_errors_of_the_patron_app_carry_the_id_too(
        self, client: AsyncTestClient[Litestar], method: str, path: str, status: int
    ) -> None:
        response = await client.request(method, path, headers={"X-Request-Id": "err-1"})
        assert response.status_code == status
        assert response.headers["x-request-id"] == "err-1"
        assert response.json()["request_id"] == "err-1"
