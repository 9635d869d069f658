"""Lists without Redis: what the API serves while the precomputed lists cannot be read.

Straight from PostgreSQL, without a model: `buy_again` is the buy-again rule (the member's products
by how many of their orders held them, then by recency; the strongest baseline in EVALUATION.md),
`discover` the store's products bought by the most members in the last four weeks that this member
never bought, `mixed` the first followed by the second. Slower than a Redis read and less apt than
the trained lists, but never wrong about what the member bought. Scores are shares (of the member's
orders, of the store's members), so they stay between 0 and 1 like the trained lists' scores.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timedelta

from recommender import repository
from recommender.lists import BOUGHT_BEFORE, POPULAR, REASONS
from recommender.repository import Connection

POPULAR_WINDOW = timedelta(days=28)
POPULAR_KEEP_SECONDS = 60.0
"""The store's best sellers are read once a minute per process, not once per request."""
POPULAR_READ = 200
"""Best sellers kept per store: enough left after removing what a member already bought."""
MAX_STORES = 1024


class Fallback:
    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._popular: OrderedDict[str, tuple[float, list[tuple[str, float]]]] = OrderedDict()

    async def read(
        self, conn: Connection, store_id: str, customer_id: str, *, list_name: str, limit: int, now: datetime
    ) -> list[tuple[str, float, str]]:
        """(product_id, score, reason) triples, as `serving.Reader.read` gives them."""
        own = await repository.bought_by_member(conn, store_id=store_id, customer_id=customer_id)
        again = [(product, share, REASONS[BOUGHT_BEFORE]) for product, share in own]
        if list_name == "buy_again":
            return again[:limit]
        bought = {product for product, _ in own}
        popular = await self._popular_in(conn, store_id, now)
        discover = [(product, share, REASONS[POPULAR]) for product, share in popular if product not in bought]
        if list_name == "discover":
            return discover[:limit]
        return (again + discover)[:limit]

    async def _popular_in(self, conn: Connection, store_id: str, now: datetime) -> list[tuple[str, float]]:
        cached = self._popular.get(store_id)
        if cached is not None and cached[0] > self._clock():
            return cached[1]
        popular = await repository.popular_since(
            conn, store_id=store_id, since=now - POPULAR_WINDOW, limit=POPULAR_READ
        )
        self._popular[store_id] = (self._clock() + POPULAR_KEEP_SECONDS, popular)
        self._popular.move_to_end(store_id)
        while len(self._popular) > MAX_STORES:
            self._popular.popitem(last=False)
        return popular
