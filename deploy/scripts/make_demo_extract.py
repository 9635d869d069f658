"""Cut the demo extract shipped in plugin/demo/ from the UCI Online Retail CSV.

    python deploy/scripts/make_demo_extract.py path/to/online_retail.csv.gz

Writes canonical events as gzip JSON lines (`{"type": ..., "data": ...}` per line), the input of
`patron backfill`: every product the extract's orders name, then the sampled customers, then their
orders and refunds in time order. How it is cut (plugin/demo/README.md says the same):

- customers: a seeded random sample of those with at least one order holding a product line;
  guest lines (no CustomerID) are left out. A customer's email (`customer-<id>@example.com`),
  birthday and marketing consent are synthetic (seeded): the dataset has none.
- orders: one per invoice; lines are the product lines (StockCode of five digits and an optional
  letter) with a positive quantity; postage codes (POST, DOT, C2) count in `total`, not in
  `subtotal`; other non-product codes (M, D, S, BANK CHARGES, AMAZONFEE, CRUK, gift vouchers, ...)
  are left out. Prices are pence, rounded half-up; times are the CSV's, UTC.
- refunds: each line of a cancellation invoice (InvoiceNo starting with C) is matched to the same
  customer's latest earlier orders with that product and quantity not yet refunded, newest first;
  what cannot be matched (a purchase before the dataset starts, a non-product code) is skipped.
  One `order.refunded` per (cancellation invoice, order), with the invoice number as refund id.
- products: title = the most frequent description (words capitalised), price = the most frequent
  unit price, category from the keyword map below (first match wins, else `gifts`).
"""

from __future__ import annotations

import argparse
import collections
import csv
import gzip
import hashlib
import io
import random
import re
import string
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import msgspec

DEFAULT_OUT = Path(__file__).resolve().parents[2] / "plugin" / "demo" / "online_retail_extract.jsonl.gz"
PRODUCT_CODE = re.compile(r"\d{5}[A-Za-z]*")
POSTAGE_CODES = frozenset({"POST", "DOT", "C2"})

# Category by words of the description, first match wins. The order matters: "CHRISTMAS CANDLE"
# is christmas, "PLAYING CARDS" toys, "HOT WATER BOTTLE" home.
CATEGORIES: list[tuple[str, tuple[str, ...]]] = [
    ("christmas", ("CHRISTMAS", "XMAS", "ADVENT", "SANTA", "REINDEER", "SNOWMAN", "BAUBLE", "NATIVITY")),
    ("candles", ("CANDLE", "CANDLES", "T-LIGHT", "T-LIGHTS", "TEALIGHT", "TEA LIGHT", "NIGHT LIGHT",
                 "LANTERN", "INCENSE", "CANDLESTICK", "MATCHES", "OIL BURNER", "CANDLEHOLDER")),
    ("jewellery", ("NECKLACE", "NECKLACE.", "EARRINGS", "BRACELET", "RING", "BROOCH", "CHARM", "BEADS",
                   "DIAMANTE", "PENDANT", "TRINKET", "JEWEL", "JEWELLERY", "HAIR")),
    ("bags", ("BAG", "BAGS", "TOTE", "SHOPPER", "PURSE", "BACKPACK", "RUCKSACK", "WASHBAG", "HANDBAG",
              "SATCHEL")),
    ("toys", ("TOY", "TOYS", "GAME", "GAMES", "DOLL", "DOLLY", "PUZZLE", "JIGSAW", "TEDDY", "PLAYING CARDS",
              "SKIPPING ROPE", "SPINNING TOP", "DOMINOES", "BALLOON", "BALLOONS", "SOLDIER", "NINJA")),
    ("cards", ("CARD", "CARDS", "GREETING", "WRAP", "WRAPPING", "GIFT TAG", "GIFT TAGS", "RIBBON", "RIBBONS",
               "TISSUE", "TISSUES")),
    ("home", ("HOT WATER BOTTLE", "CUSHION", "CLOCK", "FRAME", "MIRROR", "HOOK", "HOOKS", "HANGER",
              "HANGERS", "DOORMAT", "DOORSTOP", "SIGN", "LAMP", "LIGHTS", "BLANKET", "THROW", "STORAGE",
              "BOX", "BOXES", "BASKET", "DRAWER", "KNOB", "VASE", "PHOTO", "CABINET", "SHELF", "CURTAIN",
              "DECORATION", "ORNAMENT", "MAGNET", "MAGNETS", "MOBILE", "PAPERWEIGHT", "WREATH", "BUNTING",
              "GARLAND")),
    ("kitchen", ("MUG", "MUGS", "CUP", "CUPS", "SAUCER", "PLATE", "PLATES", "BOWL", "BOWLS", "TEAPOT", "TEA",
                 "CAKE", "CAKESTAND", "BAKING", "CUTLERY", "SPOON", "SPOONS", "NAPKIN", "NAPKINS", "APRON",
                 "JAR", "JARS", "LUNCH", "BOTTLE", "TRAY", "COASTER", "COASTERS", "KITCHEN", "GLASS", "TIN",
                 "TINS", "JUG", "EGG", "BREAD", "DOILY", "DOILIES", "PANTRY", "CHOPSTICKS", "OVEN",
                 "TUMBLER")),
    ("garden", ("GARDEN", "PLANT", "PLANTER", "POT", "POTS", "WATERING", "BIRD", "BIRDHOUSE", "FEEDER",
                "PARASOL", "SEED", "SEEDS", "HERB", "TRUG", "GNOME", "FLOWER", "FLOWERS")),
    ("stationery", ("PEN", "PENS", "PENCIL", "PENCILS", "NOTEBOOK", "NOTEPAD", "ERASER", "ERASERS", "STICKER",
                    "STICKERS", "RULER", "CALENDAR", "JOURNAL", "DIARY", "PAPER", "ENVELOPE", "ENVELOPES",
                    "BOOK", "BOOKMARK", "CRAYONS", "CHALK", "SHARPENER", "MEMO", "LETTER", "STATIONERY")),
]  # fmt: skip
FALLBACK_CATEGORY = "gifts"
_PATTERNS = [
    (name, re.compile(r"(?<![A-Z])(?:" + "|".join(re.escape(w) for w in words) + r")(?![A-Z])"))
    for name, words in CATEGORIES
]


def category(description: str) -> str:
    """The category of a product by the words of its description."""
    text = description.upper()
    return next((name for name, pattern in _PATTERNS if pattern.search(text)), FALLBACK_CATEGORY)


def pence(pounds: str) -> int:
    return int((Decimal(pounds) * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


@dataclass
class Line:
    line_id: str
    stock_code: str
    quantity: int
    unit_price: int
    refunded: int = 0


@dataclass
class Order:
    order_id: str
    customer_id: str
    placed_at: str
    lines: list[Line] = field(default_factory=list)
    postage: int = 0


def read_rows(path: Path) -> list[dict[str, str]]:
    raw = path.read_bytes()
    text = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    return list(csv.DictReader(io.StringIO(text.decode("utf-8"))))


def build_orders(rows: list[dict[str, str]]) -> tuple[dict[str, Order], list[list[dict[str, str]]]]:
    """Orders by invoice, and the cancellation invoices (rows of each), both with a customer."""
    orders: dict[str, Order] = {}
    cancellations: dict[str, list[dict[str, str]]] = collections.defaultdict(list)
    for row in rows:
        if not row["CustomerID"]:
            continue
        invoice, code = row["InvoiceNo"], row["StockCode"]
        if invoice.startswith("C"):
            cancellations[invoice].append(row)
            continue
        order = orders.setdefault(invoice, Order(invoice, row["CustomerID"], row["InvoiceDate"]))
        quantity, price = int(row["Quantity"]), pence(row["UnitPrice"])
        if quantity <= 0:
            continue
        if code in POSTAGE_CODES:
            order.postage += quantity * price
        elif PRODUCT_CODE.fullmatch(code):
            order.lines.append(Line(str(len(order.lines) + 1), code, quantity, price))
    return {k: o for k, o in orders.items() if o.lines}, list(cancellations.values())


def match_refunds(
    orders_of: dict[str, list[Order]], cancellation: list[dict[str, str]]
) -> list[dict[str, Any]]:
    """Refund events for one cancellation invoice: its lines matched to earlier orders."""
    invoice, customer_id, at = (cancellation[0][k] for k in ("InvoiceNo", "CustomerID", "InvoiceDate"))
    earlier = [o for o in orders_of.get(customer_id, []) if o.placed_at <= at]
    taken: dict[str, dict[str, int]] = collections.defaultdict(dict)
    for row in cancellation:
        need = -int(row["Quantity"])
        for order in sorted(earlier, key=lambda o: (o.placed_at, o.order_id), reverse=True):
            for line in order.lines:
                if need <= 0:
                    break
                if line.stock_code == row["StockCode"] and line.quantity > line.refunded:
                    take = min(need, line.quantity - line.refunded)
                    line.refunded += take
                    need -= take
                    lines = taken[order.order_id]
                    lines[line.line_id] = lines.get(line.line_id, 0) + take
    events = []
    for order_id, lines in taken.items():
        order = next(o for o in earlier if o.order_id == order_id)
        price = {line.line_id: line.unit_price for line in order.lines}
        events.append({
            "order_id": order_id,
            "refund_id": invoice,
            "amount": sum(quantity * price[line_id] for line_id, quantity in lines.items()),
            "lines": [{"line_id": line_id, "quantity": quantity} for line_id, quantity in lines.items()],
            "_at": at,
        })  # fmt: skip
    return events


def products_of(rows: list[dict[str, str]]) -> dict[str, dict[str, Any]]:
    titles: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    prices: dict[str, collections.Counter[int]] = collections.defaultdict(collections.Counter)
    for row in rows:
        code = row["StockCode"]
        if PRODUCT_CODE.fullmatch(code) and int(row["Quantity"]) > 0:
            if row["Description"].strip():
                titles[code][row["Description"].strip()] += 1
            if row["CustomerID"]:
                prices[code][pence(row["UnitPrice"])] += 1
    products = {}
    for code, counts in titles.items():
        description = counts.most_common(1)[0][0]
        products[code] = {
            "product_id": code,
            "title": string.capwords(description.lower()),
            "category": category(description),
            "price": prices[code].most_common(1)[0][0] if prices[code] else None,
        }
    return products


def customer_event(customer_id: str, rng: random.Random) -> dict[str, Any]:
    birthday = date(1950, 1, 1) + timedelta(days=rng.randrange(365 * 53))
    return {
        "customer_id": customer_id,
        "email": f"customer-{customer_id}@example.com",
        "birthday": birthday.isoformat(),
        "marketing_consent": rng.random() < 0.7,
    }


def extract(rows: list[dict[str, str]], *, customers: int, seed: int) -> list[bytes]:
    """The extract as JSON lines."""
    orders, cancellations = build_orders(rows)
    rng = random.Random(seed)  # noqa: S311 - a reproducible sample, not a secret
    eligible = sorted({order.customer_id for order in orders.values()}, key=int)
    chosen = rng.sample(eligible, customers)
    chosen_set = set(chosen)
    orders_of: dict[str, list[Order]] = collections.defaultdict(list)
    for order in orders.values():
        if order.customer_id in chosen_set:
            orders_of[order.customer_id].append(order)
    timeline: list[tuple[str, int, str, dict[str, Any]]] = []
    catalogue = products_of(rows)
    named: set[str] = set()
    for order in (o for per in orders_of.values() for o in per):
        lines = []
        for line in order.lines:
            named.add(line.stock_code)
            product = catalogue[line.stock_code]
            lines.append({
                "line_id": line.line_id, "product_id": line.stock_code, "sku": line.stock_code,
                "title": product["title"], "category": product["category"],
                "quantity": line.quantity, "unit_price": line.unit_price,
            })  # fmt: skip
        subtotal = sum(line.quantity * line.unit_price for line in order.lines)
        data = {
            "order_id": order.order_id, "customer": {"customer_id": order.customer_id}, "currency": "GBP",
            "subtotal": subtotal, "total": subtotal + order.postage, "placed_at": order.placed_at,
            "lines": lines,
        }  # fmt: skip
        timeline.append((order.placed_at, 0, "order.paid", data))
    for cancellation in sorted(
        cancellations, key=lambda rows: (rows[0]["InvoiceDate"], rows[0]["InvoiceNo"])
    ):
        if cancellation[0]["CustomerID"] in chosen_set:
            for refund in match_refunds(orders_of, cancellation):
                timeline.append((refund.pop("_at"), 1, "order.refunded", refund))
    events: list[tuple[str, dict[str, Any]]] = [
        ("product.upserted", catalogue[code]) for code in sorted(named)
    ]
    events += [("customer.upserted", customer_event(cid, rng)) for cid in chosen]
    events += [
        (kind, data) for _, _, kind, data in sorted(timeline, key=lambda t: (t[0], t[1], t[3]["order_id"]))
    ]
    return [msgspec.json.encode({"type": kind, "data": data}) for kind, data in events]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("csv", type=Path, help="online_retail.csv.gz (UCI Online Retail)")
    parser.add_argument("--customers", type=int, default=400)
    parser.add_argument("--seed", type=int, default=2011)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    lines = extract(read_rows(args.csv), customers=args.customers, seed=args.seed)
    # mtime=0: the same input gives the same bytes, so the sha256 in the README stays true.
    body = gzip.compress(b"\n".join(lines) + b"\n", compresslevel=9, mtime=0)
    args.out.write_bytes(body)
    kinds = collections.Counter(msgspec.json.decode(line)["type"] for line in lines)
    order_lines = sum(
        len(msgspec.json.decode(line)["data"].get("lines", [])) for line in lines if b'"order.paid"' in line
    )
    print(f"{args.out}: {len(body):,} bytes, sha256 {hashlib.sha256(body).hexdigest()}")
    print(
        ", ".join(f"{count:,} {kind}" for kind, count in sorted(kinds.items()))
        + f", {order_lines:,} order lines"
    )


if __name__ == "__main__":
    main()
