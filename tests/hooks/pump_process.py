"""A delivery pump in a process of its own, for tests that kill it: `python -m tests.hooks.pump_process URL`.

Prints `ready` once it listens, then delivers (private targets allowed) until killed.
"""

from __future__ import annotations

import asyncio
import sys

from hooks.pump import DeliveryPump
from plugin import database


async def main(database_url: str) -> None:
    pool = await database.create_pool(database_url, size=4)
    pump = DeliveryPump(pool, retry_schedule=(1,), allow_private=True, timeout=20, poll_seconds=0.1)
    print("ready", flush=True)
    await pump.run(asyncio.Event())


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
