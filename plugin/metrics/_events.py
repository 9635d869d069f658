"""Counters of what Patron does, counted where it happens: webhooks received, ledger entries written,
delivery attempts, care actions, cache reads.

Cheap on the hot paths: the labelled child of every expected label set is made once, at import, so
counting is a dict lookup and an increment (no `labels()` call, no dict building per request).
Label sets are bounded: platforms, outcomes, problem codes, entry kinds, triggers, cache names.
The domain packages know nothing of Prometheus: the ledger, the delivery pump and the
recommendation reader tell an observer, which is one of the functions below.
"""

from __future__ import annotations

from typing import get_args

from prometheus_client import Counter, Histogram

from hooks.delivery import Settled
from hooks.inbox import Status
from loyalty import ledger
from loyalty.care import ScanResult

WEBHOOKS = Counter(
    "patron_webhooks_total",
    "Inbound webhook deliveries by platform and outcome; `reason` is the problem type of a rejected one",
    ("platform", "outcome", "reason"),
)
LEDGER_ENTRIES = Counter("patron_ledger_entries_total", "Ledger entries written, by kind", ("kind",))
DELIVERY_ATTEMPTS = Counter(
    "patron_delivery_attempts_total",
    "Outbound webhook attempts by what followed (delivered, retry, dead) and the receiver's status class",
    ("outcome", "status_class"),
)
CARE_ACTIONS = Counter(
    "patron_care_actions_total", "Care actions issued by the scans, by trigger and kind", ("trigger", "kind")
)
CACHE_READS = Counter(
    "patron_cache_reads_total",
    "Reads of the Redis caches by result: profile hit, miss or stale; recommendations member, "
    "cold_start or empty",
    ("cache", "result"),
)

PAID_ORDER_BATCHES = Histogram(
    "patron_paid_order_batch_size",
    "Paid orders applied per transaction: deliveries arriving together share one (plugin/paid_batches.py)",
    buckets=(1, 2, 4, 8, 16, 32, 64),
)

PLATFORMS = ("standard", "shopify", "woocommerce")
LEDGER_KINDS = ("earn", "redeem", "expire", "reverse", "adjust")
CACHE_RESULTS = {"profile": ("hit", "miss", "stale"), "recommendations": ("member", "cold_start", "empty")}

_webhooks = {
    (platform, status): WEBHOOKS.labels(platform, status, "")
    for platform in PLATFORMS
    for status in get_args(Status)
}
_ledger = {kind: LEDGER_ENTRIES.labels(kind) for kind in LEDGER_KINDS}
_profile_reads = {result: CACHE_READS.labels("profile", result) for result in CACHE_RESULTS["profile"]}
_recommendation_reads = {
    result: CACHE_READS.labels("recommendations", result) for result in CACHE_RESULTS["recommendations"]
}
_attempts: dict[tuple[str, str], Counter] = {
    ("delivered", "2xx"): DELIVERY_ATTEMPTS.labels("delivered", "2xx"),
    **{
        (outcome, status_class): DELIVERY_ATTEMPTS.labels(outcome, status_class)
        for outcome in ("retry", "dead")
        for status_class in ("3xx", "4xx", "5xx", "none")
    },
}


def webhook_received(platform: str, status: str) -> None:
    """A delivery answered 200 with `status` (applied, duplicate, parked, ignored)."""
    _webhooks[platform, status].inc()


def webhook_rejected(platform: str, reason: str) -> None:
    """A delivery answered with an error; `reason` is the problem code (invalid-signature, …)."""
    WEBHOOKS.labels(platform, "rejected", reason).inc()


def paid_orders_batched(orders: int) -> None:
    """A batch of `orders` paid orders was applied in one transaction."""
    PAID_ORDER_BATCHES.observe(orders)


def ledger_written(kind: str, entries: int) -> None:
    """Told by the ledger (`loyalty.ledger.observe_writes`)."""
    (_ledger.get(kind) or LEDGER_ENTRIES.labels(kind)).inc(entries)


def delivery_settled(settled: Settled) -> None:
    """Told by the delivery pump of each recorded attempt."""
    code = settled.attempt.status_code
    key = (settled.outcome, "none" if code is None else f"{code // 100}xx")
    (_attempts.get(key) or DELIVERY_ATTEMPTS.labels(*key)).inc()


def care_scanned(result: ScanResult) -> None:
    """One store's scan: its actions by trigger (once per scan, off the request path)."""
    for count in result.actions:
        if count.actions:
            CARE_ACTIONS.labels(count.trigger, count.kind).inc(count.actions)


def profile_read(result: str) -> None:
    """`hit`: served from Redis; `miss`: nothing cached (or Redis down); `stale`: cached at an older
    version or past its `valid_until`, rebuilt."""
    _profile_reads[result].inc()


def recommendations_read(result: str) -> None:
    """Told by the recommendation reader where a read was answered from."""
    _recommendation_reads[result].inc()


ledger.observe_writes(ledger_written)
