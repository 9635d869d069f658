"""The `patron` command: store creation, migrations, configuration errors, and `serve` end to end."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from plugin.cli import main
from plugin.migrations import load_migrations
from tests.conftest import bearer
from tests.plugin.conftest import Client

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """main() configures the root logger; put it back as the test found it."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def patron_env(monkeypatch: pytest.MonkeyPatch, database_url: str, server_urls: tuple[str, str]) -> None:
    """Point the CLI at the test servers, and nothing else of Patron's configuration."""
    for name in os.environ:
        if name.startswith("PATRON_") and not name.startswith("PATRON_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PATRON_DATABASE_URL", database_url)
    monkeypatch.setenv("PATRON_REDIS_URL", server_urls[1])
    monkeypatch.setenv("PATRON_LOG_LEVEL", "WARNING")


async def run_patron(*argv: str) -> int:
    """main() in a thread of its own: it runs its own event loop, as on the command line."""
    return await asyncio.to_thread(main, list(argv))


@pytest.mark.usefixtures("patron_env", "restore_logging")
class TestStoreCreate:
    async def test_json_prints_a_store_with_four_working_keys(
        self, client: Client, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert await run_patron("store", "create", "--name", "CLI shop", "--currency", "USD", "--json") == 0
        out = capsys.readouterr().out
        created = json.loads(out)
        assert set(created) == {"store_id", "api_keys", "webhook_secret"}
        assert set(created["api_keys"]) == {"storefront", "marketer", "channel", "app"}
        assert created["webhook_secret"].startswith("whsec_")
        for scope, api_key in created["api_keys"].items():
            me = (await client.get("/v1/me", headers=bearer(api_key))).json()
            assert (me["store_id"], me["scope"]) == (created["store_id"], scope)

    async def test_without_json_it_prints_a_table(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert await run_patron("store", "create", "--name", "CLI shop") == 0
        lines = capsys.readouterr().out.splitlines()
        assert [line.split()[0] for line in lines] == [
            "store_id",
            "webhook_secret",
            "storefront",
            "marketer",
            "channel",
            "app",
        ]

    @pytest.mark.parametrize(
        ("argv", "named"),
        [(("--currency", "euro"), "currency"), (("--name", ""), "name")],
    )
    async def test_an_invalid_store_exits_2_in_one_line(
        self, capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], named: str
    ) -> None:
        assert await run_patron("store", "create", "--name", "x", *argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1
        assert err.startswith("patron store create: ")
        assert named in err

    async def test_an_unknown_time_zone_exits_2_in_one_line(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert await run_patron("store", "create", "--name", "x", "--timezone", "Mars/Base") == 2
        captured = capsys.readouterr()
        assert captured.err == "patron store create: unknown time zone 'Mars/Base'\n"
        assert captured.out == ""


@pytest.mark.usefixtures("patron_env", "restore_logging")
class TestMigrate:
    async def test_migrate_applies_then_has_nothing_to_do(
        self, monkeypatch: pytest.MonkeyPatch, empty_database_url: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        monkeypatch.setenv("PATRON_DATABASE_URL", empty_database_url)
        assert await run_patron("migrate") == 0
        expected = "".join(f"applied {m.version:04d}_{m.name}\n" for m in load_migrations())
        assert capsys.readouterr().out == expected
        assert await run_patron("migrate") == 0
        assert capsys.readouterr().out == "nothing to migrate\n"

    async def test_migrate_starts_no_redis_it_does_not_need(
        self, monkeypatch: pytest.MonkeyPatch, empty_database_url: str, tmp_path: Path
    ) -> None:
        monkeypatch.setenv("PATRON_DATABASE_URL", empty_database_url)
        monkeypatch.delenv("PATRON_REDIS_URL")
        assert await run_patron("migrate", "--data-dir", str(tmp_path)) == 0
        assert await asyncio.to_thread(lambda: list(tmp_path.iterdir())) == []


@pytest.mark.usefixtures("restore_logging")
class TestInvalidConfiguration:
    def test_a_bad_variable_exits_2_naming_it(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        monkeypatch.setenv("PATRON_DB_POOL_SIZE", "lots")
        assert main(["migrate"]) == 2
        assert capsys.readouterr().err == (
            "patron: invalid configuration PATRON_DB_POOL_SIZE: Expected `int`, got `str`\n"
        )

    def test_a_bad_flag_exits_2_naming_it(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["serve", "--workers", "0"]) == 2
        assert capsys.readouterr().err == "patron: invalid configuration --workers: Expected `int` >= 1\n"


# --- end to end: `patron serve` on its embedded servers ------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def patron_command(*argv: str) -> list[str]:
    # `python -m` from the checkout, so the code under test runs (not whatever `patron` is installed).
    return [sys.executable, "-m", "plugin.cli", *argv]


def clean_env() -> dict[str, str]:
    """The environment with no Patron configuration at all: embedded servers, defaults."""
    return {name: value for name, value in os.environ.items() if not name.startswith("PATRON_")}


def wait_for_health(url: str, process: subprocess.Popen[bytes], *, within: float) -> httpx.Response:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        assert process.poll() is None, "patron serve exited early"
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {within} s")


def postgres_pid(data_dir: Path) -> int:
    return int((data_dir / "postgres" / "postmaster.pid").read_text().split()[0])


def redis_pid(data_dir: Path) -> int:
    registry = json.loads((data_dir / "redis.rdb.settings").read_text())
    return int(Path(registry["pidfile"]).read_text())


def gone(pid: int, *, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slow
def test_serve_runs_on_embedded_servers_shares_them_and_stops_cleanly(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    log_file = (tmp_path / "serve.log").open("wb")
    serve = subprocess.Popen(  # noqa: S603 - our own command
        patron_command("serve", "--port", str(port), "--data-dir", str(data_dir)),
        cwd=ROOT,
        env=clean_env(),
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    try:
        health = wait_for_health(f"http://127.0.0.1:{port}/health", serve, within=90)
        assert health.status_code == 200
        assert health.json() == {"status": "ok", "postgres": "ok", "redis": "ok"}
        servers = postgres_pid(data_dir), redis_pid(data_dir)

        created = subprocess.run(  # noqa: S603 - our own command
            patron_command("store", "create", "--name", "E2E shop", "--json", "--data-dir", str(data_dir)),
            cwd=ROOT,
            env=clean_env(),
            capture_output=True,
            timeout=90,
            check=False,
        )
        assert created.returncode == 0, created.stderr.decode()
        store = json.loads(created.stdout)
        # The second process used the running servers (the server sees its store) and left them running.
        assert (postgres_pid(data_dir), redis_pid(data_dir)) == servers
        assert all(psutil.pid_exists(pid) for pid in servers)
        me = httpx.get(f"http://127.0.0.1:{port}/v1/me", headers=bearer(store["api_keys"]["app"]), timeout=5)
        assert me.json()["store_id"] == store["store_id"]

        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=30) == 0
        assert gone(servers[0], within=10), "embedded PostgreSQL still running"
        assert gone(servers[1], within=10), "embedded Redis still running"
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()
        log_file.close()
