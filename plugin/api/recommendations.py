"""A member's recommendations, precomputed per model version and read from Redis; from PostgreSQL
(`recommender/fallback.py`) while Redis cannot be read."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from litestar import get
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, QueryParameter

from loyalty.stores import Principal, Scope
from plugin import metrics
from plugin.auth import OWN_MEMBER, requires
from plugin.runtime import Runtime
from recommender.fallback import Fallback
from recommender.serving import Reader

ListName = Literal["mixed", "buy_again", "discover"]


class Recommendation(msgspec.Struct, kw_only=True):
    """One product for the member. `score` is the estimated chance they buy it in the next weeks;
    `reason` says why it is there: `bought_before`, `due_again` (their own rhythm says it is due),
    `similar_members`, `popular_now`, or for members the model does not know yet (cold start)
    `popular_in_favourite_categories` and `popular`."""

    product_id: str
    score: float
    reason: str


class Recommendations(msgspec.Struct, kw_only=True):
    """`model_version` is the trained model the list came from: null before any training, and while
    Redis is unavailable, when the lists come from PostgreSQL (the member's own products by how often
    they bought them, reason `bought_before`; then the store's recent best sellers, `popular`)."""

    items: list[Recommendation]
    list_name: ListName = msgspec.field(name="list")
    model_version: int | None = None


def provide_reader(state: State, runtime: NamedDependency[Runtime]) -> Reader:
    """One reader per app: it caches the live version number and product ids, never a model."""
    reader = state.get("recommendation_reader")
    if reader is None:
        reader = Reader(runtime.redis, observe=metrics.recommendations_read)
        state["recommendation_reader"] = reader
    return reader


def provide_fallback(state: State) -> Fallback:
    """One per app: it keeps each store's recent best sellers for a minute."""
    fallback = state.get("recommendation_fallback")
    if fallback is None:
        fallback = Fallback()
        state["recommendation_fallback"] = fallback
    return fallback


@get(
    "/v1/members/{cid:str}/recommendations",
    opt=requires(Scope.channel, Scope.app, Scope.marketer) | {OWN_MEMBER: True},
    dependencies={
        "reader": Provide(provide_reader, sync_to_thread=False),
        "fallback": Provide(provide_fallback, sync_to_thread=False),
    },
    tags=["members"],
    summary="Recommendations for a member",
)
async def recommendations(
    principal: NamedDependency[Principal],
    runtime: NamedDependency[Runtime],
    reader: NamedDependency[Reader],
    fallback: NamedDependency[Fallback],
    cid: FromPath[str],
    limit: Annotated[int, QueryParameter(ge=1, le=50)] = 10,
    list_name: Annotated[ListName, QueryParameter(name="list")] = "mixed",
) -> Recommendations:
    """`buy_again`: the member's own products, ranked by how likely they are to buy each again soon
    (frequency, recency and their repurchase rhythm); `discover`: products they never bought;
    `mixed` (default): both, interleaved by score."""
    read = await runtime.redis_breaker.call(
        lambda: reader.read(principal.store_id, cid, list_name=list_name, limit=limit), default=None
    )
    if read is not None:
        found, version = read
    else:  # Redis unavailable
        async with runtime.pool.acquire() as conn:
            found = await fallback.read(
                conn, principal.store_id, cid, list_name=list_name, limit=limit, now=runtime.clock()
            )
        version = None
    items = [Recommendation(product_id=p, score=s, reason=r) for p, s, r in found]
    return Recommendations(items=items, list_name=list_name, model_version=version)
