"""SQL of the integration edge: the inbox, webhook endpoints and the outbox's delivery state."""

from __future__ import annotations

import asyncpg

Pool = asyncpg.Pool
"""What the delivery pump draws connections from; only repositories touch asyncpg."""

__all__ = ["Pool"]
