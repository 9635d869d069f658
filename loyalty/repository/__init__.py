"""All SQL of the loyalty domain. Functions take a connection; none opens a transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

if TYPE_CHECKING:
    Connection: TypeAlias = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]
else:
    # What request handlers receive from the pool; Litestar checks dependency types at run time.
    Connection = PoolConnectionProxy
"""What services pass around (a plain or a pooled connection); only repositories touch asyncpg."""

UniqueViolation = asyncpg.UniqueViolationError


def unnest_columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[tuple[Any, ...]]:
    """Rows as one tuple per column, the arguments of `unnest($n::type[], ...)` that turns them
    back into rows in one statement (empty columns for no rows)."""
    return list(zip(*rows, strict=True)) if rows else [() for _ in range(width)]


__all__ = ["Connection", "UniqueViolation", "unnest_columns"]
