"""All SQL of the loyalty domain. Functions take a connection; none opens a transaction."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

if TYPE_CHECKING:
    Connection: TypeAlias = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]
else:
    # What request handlers receive from the pool; Litestar checks dependency types at run time.
    Connection = PoolConnectionProxy
"""What services pass around (a plain or a pooled connection); only repositories touch asyncpg."""

UniqueViolation = asyncpg.UniqueViolationError

__all__ = ["Connection", "UniqueViolation"]
