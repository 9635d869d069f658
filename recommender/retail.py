"""The UCI Online Retail CSV as `Purchases`, `Catalogue` and `MemberFacts`, for evaluation.

Decisions about that file, so the same data is what PostgreSQL would hold after a backfill:
- guest lines (no CustomerID) are left out: nothing can be recommended to nobody;
- only product codes count (five digits, maybe a letter suffix); postage, discounts, manual lines,
  bank charges and fees are not products a member chooses;
- C-invoices are refunds: their quantity is taken off the member's purchases of that product,
  newest first, as a refund lowers `refunded_qty` on order lines;
- the product type (the last word of the description: HOLDER, LANTERN, MUG ...) is the category, the
  other words are tags, the median unit price is the price; the country is the member's segment.
"""

from __future__ import annotations

import csv
import gzip
import re
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

import numpy as np

from recommender.dataset import Catalogue, MemberFacts, Purchases

_PRODUCT_CODE = re.compile(r"^\d{5}[A-Z]*$")
_WORD = re.compile(r"[A-Z][A-Z'-]{2,}")


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def load(path: str | Path) -> tuple[Purchases, Catalogue, MemberFacts]:
    """Read the gzip CSV (or plain CSV) into the arrays every source is turned into."""
    opener = gzip.open if str(path).endswith(".gz") else open
    bought: dict[tuple[str, str, str], list[float]] = {}
    cancelled: Counter[tuple[str, str]] = Counter()
    descriptions: dict[str, Counter[str]] = defaultdict(Counter)
    prices: dict[str, list[float]] = defaultdict(list)
    countries: dict[str, str] = {}
    with opener(path, "rt", newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            member, code = row["CustomerID"].strip(), row["StockCode"].strip().upper()
            price = float(row["UnitPrice"] or 0)
            if not member or not _PRODUCT_CODE.match(code) or price <= 0:
                continue
            quantity = int(row["Quantity"])
            countries[member] = row["Country"]
            if row["InvoiceNo"].startswith("C"):
                cancelled[member, code] += -quantity
                continue
            if quantity <= 0:
                continue
            descriptions[code][row["Description"].strip().upper()] += 1
            prices[code].append(price)
            key = (member, code, row["InvoiceNo"])
            if key in bought:
                bought[key][1] += quantity
            else:
                bought[key] = [_epoch(row["InvoiceDate"]), float(quantity)]
    keys = list(bought)
    purchases = Purchases(
        member=np.array([k[0] for k in keys], dtype=np.str_),
        product=np.array([k[1] for k in keys], dtype=np.str_),
        at=np.array([bought[k][0] for k in keys]),
        quantity=np.array([bought[k][1] for k in keys]),
    )
    purchases = _net_of_cancellations(purchases, cancelled)
    return purchases, _catalogue(descriptions, prices), _facts(countries)


def _net_of_cancellations(purchases: Purchases, cancelled: Counter[tuple[str, str]]) -> Purchases:
    """Take cancelled quantities off each member x product's purchases, newest first."""
    order = np.lexsort((-purchases.at, purchases.product, purchases.member))
    member, product = purchases.member[order], purchases.product[order]
    at, quantity = purchases.at[order], purchases.quantity[order]
    to_take = np.array([cancelled.get((m, p), 0) for m, p in zip(member, product, strict=True)], float)
    new_pair = np.ones(len(order), dtype=bool)
    new_pair[1:] = (member[1:] != member[:-1]) | (product[1:] != product[:-1])
    cumulative = np.cumsum(quantity)
    start_total = np.maximum.accumulate(np.where(new_pair, cumulative - quantity, 0))
    taken_before = cumulative - quantity - start_total
    taken = np.clip(to_take - taken_before, 0, quantity)
    net = quantity - taken
    keep = net > 0
    return Purchases(member[keep], product[keep], at[keep], net[keep])


def _catalogue(descriptions: dict[str, Counter[str]], prices: dict[str, list[float]]) -> Catalogue:
    codes = sorted(descriptions)
    categories, tags = [], []
    for code in codes:
        words = _WORD.findall(descriptions[code].most_common(1)[0][0])
        categories.append(words[-1] if words else "")
        tags.append(tuple(sorted(set(words[:-1]))))
    n = len(codes)
    return Catalogue(
        product=np.array(codes, dtype=np.str_),
        category=np.array(categories, dtype=np.str_),
        brand=np.full(n, "", dtype=np.str_),
        price=np.array([float(np.median(prices[c])) for c in codes]),
        tags=tags,
        consumable_days=np.full(n, np.nan),
        active=np.ones(n, dtype=bool),
    )


def _facts(countries: dict[str, str]) -> MemberFacts:
    members = sorted(countries)
    return MemberFacts(
        member=np.array(members, dtype=np.str_),
        segment=np.array([countries[m] for m in members], dtype=np.str_),
        favourites=[() for _ in members],
    )
