"""What the commands share: running async work on a runtime, errors, argument types."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from loyalty.errors import PatronError
from plugin import database
from plugin.lifespan import open_runtime
from plugin.migrations import migrate
from plugin.runtime import Runtime
from plugin.settings import Settings


async def _migrate(database_url: str) -> list[str]:
    conn = await database.connect(database_url)
    try:
        return [f"{m.version:04d}_{m.name}" for m in await migrate(conn)]
    finally:
        await conn.close()


def _with_runtime(settings: Settings, body: Callable[[Runtime], Awaitable[int]]) -> int:
    async def run() -> int:
        async with open_runtime(settings) as runtime:
            return await body(runtime)

    return asyncio.run(run())


def _with_handled_errors(name: str, settings: Settings, body: Callable[[Runtime], Awaitable[int]]) -> int:
    try:
        return _with_runtime(settings, body)
    except PatronError as exc:
        print(f"patron {name}: {exc.detail}", file=sys.stderr)
        return 1


def _since(text: str) -> datetime:
    """An ISO 8601 time; one without an offset is UTC."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value
