"""`patron backfill` and `patron demo` against the test servers."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import msgspec
import pytest

from plugin import cli, demo
from plugin.runtime import Runtime
from plugin.settings import Settings
from tests.conftest import make_store
from tests.events import make_line, make_order

Client = httpx.AsyncClient


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    """The CLI reads the same servers as the app under test (and leaves pytest's logging alone)."""
    assert settings.database_url is not None
    assert settings.redis_url is not None
    monkeypatch.setenv("PATRON_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("PATRON_REDIS_URL", settings.redis_url)
    monkeypatch.setattr(cli, "configure_logging", lambda _: None)


async def patron(*argv: str) -> int:
    # In a thread: the command runs its own event loop, as it does from a shell.
    return await asyncio.to_thread(cli.main, list(argv))


def events_file(path: Path, orders: list[dict[str, object]], *extra: bytes) -> Path:
    lines = [msgspec.json.encode({"type": "order.paid", "data": order}) for order in orders]
    path.write_bytes(gzip.compress(b"\n".join([*lines, *extra]) + b"\n"))
    return path


async def count_orders(runtime: Runtime, store_id: str) -> int:
    async with runtime.pool.acquire() as conn:
        return int(await conn.fetchval("SELECT count(*) FROM orders WHERE store_id = $1", store_id))


@pytest.mark.usefixtures("cli_env")
class TestBackfillCommand:
    async def test_loads_a_gzip_file_and_prints_a_summary(
        self, client: Client, runtime: Runtime, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        store = await make_store(client)
        orders = [make_order(lines=[make_line(), make_line()]) for _ in range(3)]
        path = events_file(tmp_path / "history.jsonl.gz", orders)
        assert await patron("backfill", "--store", store.store_id, str(path)) == 0
        out = capsys.readouterr().out
        assert re.search(r"^orders\s+3 \(0 already known\)$", out, re.MULTILINE), out
        assert re.search(r"^order lines\s+6$", out, re.MULTILINE), out
        assert await count_orders(runtime, store.store_id) == 3

    async def test_a_bad_line_is_named_and_nothing_is_written(
        self, client: Client, runtime: Runtime, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        store = await make_store(client)
        path = events_file(tmp_path / "bad.jsonl.gz", [make_order()], b'{"type": "order.paid", "data": {}}')
        assert await patron("backfill", "--store", store.store_id, str(path)) == 1
        err = capsys.readouterr().err
        assert "line 2: Object missing required field" in err
        assert "nothing was written" in err
        assert await count_orders(runtime, store.store_id) == 0

    async def test_an_unknown_store_is_refused(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        path = events_file(tmp_path / "history.jsonl.gz", [make_order()])
        assert await patron("backfill", "--store", "st_nope", str(path)) == 2
        assert "no store st_nope" in capsys.readouterr().err


@pytest.mark.usefixtures("cli_env")
class TestDemoCommand:
    async def test_creates_a_store_with_balances_and_prints_how_to_try_it(
        self, runtime: Runtime, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert await patron("demo", "--members", "15") == 0
        out = capsys.readouterr().out
        match = re.search(r"^demo store  (st_\w+)", out, re.MULTILINE)
        assert match is not None, out
        assert "15 customers" in out
        assert re.search(r"^channel key +pk_channel_", out, re.MULTILINE)
        assert "/v1/members/" in out
        assert "/v1/hooks/standard/" + match.group(1) in out
        async with runtime.pool.acquire() as conn:
            members, points = await conn.fetchrow(
                "SELECT count(*), sum(balance) FROM members WHERE store_id = $1", match.group(1)
            )
        assert members == 15
        assert points > 0

    @pytest.mark.slow
    async def test_the_whole_extract(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert await patron("demo") == 0
        assert "400 customers" in capsys.readouterr().out


class TestExtract:
    def test_the_first_members_come_with_their_orders_and_refunds_only(self) -> None:
        lines, last = demo.extract_lines(members=10)
        events = [msgspec.json.decode(line) for line in lines]
        customers = {e["data"]["customer_id"] for e in events if e["type"] == "customer.upserted"}
        orders = {e["data"]["order_id"]: e["data"] for e in events if e["type"] == "order.paid"}
        assert len(customers) == 10
        assert {order["customer"]["customer_id"] for order in orders.values()} <= customers
        assert all(e["data"]["order_id"] in orders for e in events if e["type"] == "order.refunded")
        assert max(datetime.fromisoformat(order["placed_at"]) for order in orders.values()) == last

    def test_the_shift_keeps_weekdays_and_ends_in_the_past_week(self) -> None:
        last = datetime(2011, 12, 9, 12, 16, tzinfo=UTC)
        now = datetime(2026, 5, 20, 8, 0, tzinfo=UTC)
        moved = last + demo.time_shift(last, now)
        assert moved.weekday() == last.weekday()
        assert now - timedelta(weeks=1) < moved <= now

    def test_the_readme_states_the_extracts_checksum(self) -> None:
        digest = hashlib.sha256(demo.EXTRACT.read_bytes()).hexdigest()
        assert digest in (demo.EXTRACT.parent / "README.md").read_text()
        assert demo.EXTRACT.stat().st_size < 2_000_000

    def test_the_demo_program_has_three_tiers(self) -> None:
        program = demo.demo_program()
        assert [level.code for level in program.tiers.levels] == ["member", "silver", "gold"]
