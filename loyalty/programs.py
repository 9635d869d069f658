"""A store's program: the live version (cached), publishing a new one, and tier re-evaluation.

A store gets the default program published as version 1 when it is created (`publish_initial`,
called by `stores.create_store`), so every program an order or tier change refers to is a row in
`programs`. Version 0 (a store row written without it, e.g. by SQL) reads as the default program.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from datetime import datetime

import msgspec

from loyalty.errors import NotFound, PreconditionFailed
from loyalty.program import Program, default_program, validate
from loyalty.repository import Connection
from loyalty.repository import programs as repo
from loyalty.repository import tiers as tier_repo
from loyalty.tiers import TierChange

CACHE_SIZE = 4096
"""Programs kept decoded per process; documents are small (a few kB) and never change once written."""

# (store_id, version, row token) → Program. A published version never changes, so an entry is
# never stale; the token (the row's xmin) keeps a version number reused after a rolled-back
# publish from matching an entry cached inside that transaction.
_cache: OrderedDict[tuple[str, int, str], Program] = OrderedDict()


async def live_program(conn: Connection, *, store_id: str, lock_orders: Sequence[str] = ()) -> Program:
    """The store's live program, `version` set. Treat it as read-only: it is shared.

    Cost: one query (the stores row and the programs row by primary key, no document) and a dict
    lookup; the document is fetched and decoded only the first time a process sees a version.
    The read takes no lock: a publish committing while the caller's transaction runs is not seen
    by it (its order is earned and its member evaluated under the version read here); the
    publish's own pass, and the daily pass, evaluate that member again.

    With `lock_orders`, the same statement first takes those orders' key locks (see
    `loyalty.orders`), which ingesting order events needs before anything else.
    """
    live = await repo.live(conn, store_id=store_id, lock_orders=lock_orders)
    if live is None:
        raise NotFound(f"no store {store_id}")
    if live.version == 0 or live.token is None:
        return msgspec.structs.replace(default_program(), version=0)
    key = (store_id, live.version, live.token)
    program = _cache.get(key)
    if program is not None:
        _cache.move_to_end(key)
        return program
    program = await repo.get_document(conn, store_id=store_id, version=live.version)
    if program is None:  # pragma: no cover - the row was just seen
        raise NotFound(f"no program version {live.version} for store {store_id}")
    _cache[key] = program
    while len(_cache) > CACHE_SIZE:
        _cache.popitem(last=False)
    return program


async def live_version(conn: Connection, *, store_id: str) -> int:
    """The store's live version number (0 before anything was published)."""
    version = await repo.live_version(conn, store_id=store_id)
    if version is None:
        raise NotFound(f"no store {store_id}")
    return version


async def publish(
    conn: Connection,
    *,
    store_id: str,
    program: Program,
    expected_version: int,
    actor: str,
    now: datetime,
) -> Program:
    """Make `program` the store's next version if the live one is still `expected_version`.

    Then re-evaluate every member against it in one set-based pass (in this transaction). Raises
    PreconditionFailed when another version was published meanwhile, NotFound for no store.
    """
    validate(program)
    # Before the compare-and-set, so a daily pass holding the lock never waits on the store row.
    await repo.lock_tier_passes(conn, store_id=store_id)
    version = await repo.advance_version(conn, store_id=store_id, expected_version=expected_version)
    if version is None:
        current = await live_version(conn, store_id=store_id)
        raise PreconditionFailed(
            f"the program is at version {current}, not {expected_version}: "
            "fetch it again and reapply your change",
            current_version=current,
        )
    published = msgspec.structs.replace(program, version=version)
    await repo.insert(
        conn, store_id=store_id, version=version, program=published, created_at=now, created_by=actor
    )
    await reevaluate_store(
        conn,
        store_id=store_id,
        program=published,
        now=now,
        reason=f"program change v{expected_version}→v{version}",
    )
    return published


async def publish_initial(conn: Connection, *, store_id: str, now: datetime) -> Program:
    """Publish the default program as version 1 of a new store."""
    return await publish(
        conn, store_id=store_id, program=default_program(), expected_version=0, actor="patron", now=now
    )


async def reevaluate(
    conn: Connection,
    *,
    store_id: str,
    program: Program,
    now: datetime,
    reason: str,
    customer_ids: Sequence[str],
) -> list[TierChange]:
    """Evaluate these members' tiers against `program` as of `now` and apply the outcome.

    For one member after an order or a refund: one statement, by primary key and the orders
    index. Each level change updates the member (tier_code, tier_since = now), appends
    tier_changes with reason "<transition> (<reason>)" (transitions: `upgrade`, `downgrade after
    grace`, `tier removed`), the metric value and `program.version`, and writes a `tier.changed`
    outbox row. below_since is set or cleared without a change row. Returns the level changes.
    """
    if not customer_ids:
        return []
    return await tier_repo.apply(
        conn,
        store_id=store_id,
        program=program,
        program_version=program.version or 0,
        now=now,
        cause=reason,
        customer_ids=customer_ids,
    )


async def reevaluate_store(
    conn: Connection, *, store_id: str, program: Program, now: datetime, reason: str
) -> int:
    """`reevaluate` for every member of the store in one set-based statement; returns how many
    changed level. Takes the store's tier-pass lock, so store-wide passes never interleave."""
    await repo.lock_tier_passes(conn, store_id=store_id)
    return await tier_repo.apply_all(
        conn, store_id=store_id, program=program, program_version=program.version or 0, now=now, cause=reason
    )


async def evaluate_store(conn: Connection, *, store_id: str, now: datetime, reason: str) -> int:
    """Re-evaluate every member of a store against its live program (the daily pass)."""
    # Lock first, then read: a publish that committed while this waited is the program used.
    await repo.lock_tier_passes(conn, store_id=store_id)
    program = await live_program(conn, store_id=store_id)
    return await reevaluate_store(conn, store_id=store_id, program=program, now=now, reason=reason)
