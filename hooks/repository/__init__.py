"""SQL of the integration edge: the inbox, webhook endpoints and the outbox's delivery state."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

Pool = asyncpg.Pool
"""What the delivery pump draws connections from; only repositories touch asyncpg."""

if TYPE_CHECKING:
    PooledConnection: TypeAlias = PoolConnectionProxy[asyncpg.Record]
else:
    PooledConnection = PoolConnectionProxy
"""A connection taken from a Pool (and given back to it)."""

__all__ = ["Pool", "PooledConnection"]
