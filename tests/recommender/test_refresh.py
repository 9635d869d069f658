"""Refresh: the lists computed in blocks and written to Redis while the next block computes."""

from __future__ import annotations

import numpy as np

from plugin.runtime import Runtime
from recommender import lists, publishing, serving
from recommender.refresh import publish_lists
from recommender.train import TrainingData
from tests.recommender.worlds import WIDE, random_model


async def test_lists_streamed_to_redis_are_one_computation_of_them(runtime: Runtime) -> None:
    """Blocks written while the next ones compute: every member's row in Redis is the row a single
    computation of every list gives, and the reader decodes it."""
    rec, pairs, catalogue = random_model(n_items=WIDE)
    data = TrainingData(catalogue=catalogue, facts=None, history=pairs, validation=pairs, labels=pairs)
    store, k = "st_streamed", 8
    streamed = await publish_lists(
        runtime.redis,
        store_id=store,
        version=1,
        rec=rec,
        data=data,
        popularity=np.ones(WIDE),
        k=k,
        threads=2,
        block=10,
    )
    await serving.switch(runtime.redis, store_id=store, version=1)
    assert streamed.members == pairs.n_users
    whole = lists.compute(rec, pairs, catalogue, k=k)
    rows = publishing.encode_rows(whole, k)
    for member, row in zip(whole.members.tolist(), rows, strict=True):
        bucket = serving.version_key(store, 1, f"b{serving.bucket_of(member)}")
        assert await runtime.redis.hget(bucket, member) == row.tobytes()
    reader = serving.Reader(runtime.redis, live_ttl=0.0)
    found, version = await reader.read(store, str(whole.members[3]), list_name="discover", limit=k)
    assert version == 1
    assert [p for p, _, _ in found] == [str(catalogue.product[i]) for i in whole.discover_items[3] if i >= 0]
