"""STUB until the program branch lands: the live program of a store."""

from __future__ import annotations

from loyalty.program import Program, default_program
from loyalty.repository import Connection


async def live_program(conn: Connection, *, store_id: str) -> Program:
    return default_program()
