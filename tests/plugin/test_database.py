"""The pool's shutdown: a connection never given back does not hold the process up at exit."""

from __future__ import annotations

import time

import pytest

from plugin import database
from plugin.runtime import Runtime


async def test_closing_the_pool_does_not_wait_forever_for_a_leaked_connection(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    assert runtime.settings.database_url is not None
    pool = await database.create_pool(runtime.settings.database_url, size=2)
    await pool.acquire()  # never released
    monkeypatch.setattr(database, "POOL_CLOSE_SECONDS", 0.5)
    started = time.monotonic()
    await database.close_pool(pool)
    assert time.monotonic() - started < 5
    assert pool.is_closing()
    assert "still in use" in caplog.text
