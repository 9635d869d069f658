"""`patron demo`: a store with real purchase history, backfilled with points, ready to query.

The history is an extract of the UCI Online Retail dataset shipped beside this module (see
README.md here for its provenance and how it was cut). Its year, 2010-12 to 2011-12, is moved
forward by whole weeks so that the last order falls in the past week: the 365-day tier window
and point expiry then show a living program rather than one that lapsed a decade ago.
"""

from __future__ import annotations

import gzip
import shlex
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import msgspec

from loyalty import backfill, programs, stores
from loyalty.backfill import Summary
from loyalty.program import CategoryBonus, Level, Points, Program, Reward, Tiers, validate
from loyalty.repository import Connection
from loyalty.repository import backfill as backfill_repo
from loyalty.repository import stores as stores_repo
from loyalty.repository.backfill import TopMember
from loyalty.stores import Scope, StoreCreate, StoreCreated

EXTRACT = Path(__file__).with_name("online_retail_extract.jsonl.gz")
STORE = StoreCreate(name="Patron demo (Online Retail)", currency="GBP", timezone="Europe/London")


def demo_program() -> Program:
    """Three tiers by yearly spend (in the extract about 60% member, 25% silver, 15% gold), a
    Christmas bonus, two vouchers."""
    return validate(
        Program(
            points=Points(per_currency_unit=1, expiry_days=365),
            tiers=Tiers(
                metric="spend",
                window_days=365,
                downgrade_grace_days=30,
                levels=[
                    Level(code="member", name="Member", threshold=0, multiplier=1.0),
                    Level(code="silver", name="Silver", threshold=100_000, multiplier=1.25),
                    Level(code="gold", name="Gold", threshold=300_000, multiplier=1.5),
                ],
            ),
            rules=[CategoryBonus(category="christmas", multiplier=2.0)],
            rewards=[
                Reward(id="voucher-5", name="£5 voucher", cost=500, kind="voucher", value=500),
                Reward(id="voucher-20", name="£20 voucher", cost=1800, kind="voucher", value=2000),
            ],
        )
    )


class _Customer(msgspec.Struct, frozen=True):
    customer_id: str


class _Data(msgspec.Struct, frozen=True):
    customer_id: str | None = None
    order_id: str | None = None
    customer: _Customer | None = None
    placed_at: datetime | None = None


class _Head(msgspec.Struct, frozen=True):
    type: str
    data: _Data


def extract_lines(members: int | None = None, path: Path = EXTRACT) -> tuple[list[bytes], datetime]:
    """The extract's lines, only the first `members` customers' (with their orders and refunds)
    when given, and the time of the last order among them."""
    lines = gzip.decompress(path.read_bytes()).splitlines()
    decode = msgspec.json.Decoder(_Head).decode
    heads = [decode(line) for line in lines]
    chosen = [h.data.customer_id for h in heads if h.type == "customer.upserted"][:members]
    customers = set(chosen)
    orders: set[str | None] = set()
    kept, last = [], datetime.min
    for line, head in zip(lines, heads, strict=True):
        data = head.data
        if head.type == "customer.upserted" and data.customer_id not in customers:
            continue
        if head.type == "order.paid":
            if data.customer is None or data.placed_at is None:
                raise ValueError(f"{path}: an order without customer or time")
            if data.customer.customer_id not in customers:
                continue
            orders.add(data.order_id)
            last = data.placed_at if last == datetime.min else max(last, data.placed_at)
        if head.type in ("order.refunded", "order.cancelled") and data.order_id not in orders:
            continue
        kept.append(line)
    return kept, last


def time_shift(last: datetime, now: datetime) -> timedelta:
    """Whole weeks (weekdays stay as they were) that bring `last` into the week before `now`."""
    return timedelta(weeks=max((now - last) // timedelta(weeks=1), 0))


class DemoStore(msgspec.Struct, kw_only=True):
    created: StoreCreated
    summary: Summary
    shift: timedelta
    top: list[TopMember]


async def create_demo(
    conn: Connection,
    *,
    now: datetime,
    members: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> DemoStore:
    """Create the demo store and backfill the extract with points, in the caller's transaction."""
    created = await stores.create_store(conn, STORE, now=now)
    await programs.publish(
        conn,
        store_id=created.store_id,
        program=demo_program(),
        expected_version=await programs.live_version(conn, store_id=created.store_id),
        actor="patron demo",
        now=now,
    )
    store = await stores_repo.get_store(conn, store_id=created.store_id)
    assert store is not None
    lines, last = extract_lines(members)
    shift = time_shift(last, now)
    summary = await backfill.load(
        conn, store=store, lines=lines, now=now, award=True, progress=progress, shift=shift
    )
    top = await backfill_repo.top_members(conn, store_id=store.store_id, limit=5)
    return DemoStore(created=created, summary=summary, shift=shift, top=top)


def render(demo: DemoStore, *, base_url: str) -> str:
    """What `patron demo` prints: the store, its keys, its best members and requests to try."""
    created, summary = demo.created, demo.summary
    keys = {scope: key for scope, key in created.api_keys.items()}
    channel = keys[Scope.channel]
    out = [
        f"demo store  {created.store_id}  ({STORE.name}, {STORE.currency}, {STORE.timezone})",
        f"  {summary.customers:,} customers, {summary.orders:,} orders ({summary.order_lines:,} lines), "
        f"{summary.refunds:,} refunds, {summary.products:,} products in {summary.seconds:.1f} s; "
        f"history moved {demo.shift.days // 7} weeks forward",
        "",
        *(f"{scope.value + ' key':<16}{key}" for scope, key in keys.items()),
        f"{'webhook secret':<16}{created.webhook_secret}",
        "",
        "members with the most points",
        f"  {'customer':<10}{'tier':<8}{'points':>10}{'orders':>8}",
        *(f"  {m.customer_id:<10}{m.tier_code:<8}{m.balance:>10,}{m.orders_count:>8}" for m in demo.top),
    ]
    if demo.top:
        cid = demo.top[0].customer_id
        auth = shlex.quote(f"Authorization: Bearer {channel}")
        out += [
            "",
            "try it (start the API first: patron serve, with the same --data-dir or database):",
            f"  curl -s {base_url}/v1/members/{cid} -H {auth}",
            f"  curl -s {base_url}/v1/members/{cid}/ledger -H {auth}",
            "  # a signed order.paid webhook (Standard Webhooks), in Python for the HMAC:",
            "  " + _webhook_one_liner(demo, cid, base_url),
        ]
    return "\n".join(out)


def _webhook_one_liner(demo: DemoStore, customer_id: str, base_url: str) -> str:
    url = f"{base_url}/v1/hooks/standard/{demo.created.store_id}"
    # Double quotes only, so the shell's single quotes hold it as is; a fresh order id and time
    # on every run, so each run is a new order rather than a duplicate.
    code = (
        "import json,time,urllib.request as u;from hooks.signing import sign;t=int(time.time());"
        'i=f"demo-{t}";line=dict(line_id="1",product_id="85123A",quantity=2,unit_price=1250);'
        f'o=dict(order_id=i,customer=dict(customer_id="{customer_id}"),currency="{STORE.currency}",'
        'subtotal=2500,total=2500,placed_at=time.strftime("%Y-%m-%dT%H:%M:%SZ",time.gmtime(t)),lines=[line]);'
        'b=json.dumps(dict(type="order.paid",data=o)).encode();'
        f's=sign("{demo.created.webhook_secret}",msg_id=i,timestamp=t,body=b);'
        'h={"webhook-id":i,"webhook-timestamp":str(t),"webhook-signature":s,"content-type":"application/json"};'
        f'print(u.urlopen(u.Request("{url}",b,h)).read().decode())'
    )
    return f"{shlex.quote(sys.executable)} -c {shlex.quote(code)}"
