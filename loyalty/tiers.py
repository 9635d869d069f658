"""STUB until the program branch lands."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from loyalty.program import Program
from loyalty.repository import Connection


async def reevaluate(
    conn: Connection,
    *,
    store_id: str,
    program: Program,
    now: datetime,
    customer_ids: Sequence[str] | None = None,
    reason: str,
) -> list[object]:
    return []
