"""Patron's traffic as Locust users: a storefront's webhooks in flash-sale bursts, a customer app
reading profiles and recommendations, service agents working cases, a marketer previewing changes.

Run through `make loadtest` (deploy/loadtest/run.py), which starts or targets a Patron, provisions a
store with members, and passes what it made in the file named by LOADTEST_FIXTURE (JSON: `store_id`,
`webhook_secret`, `api_keys` by scope, `customers`, `products`). By hand:

    LOADTEST_FIXTURE=fixture.json locust -f deploy/loadtest/locustfile.py --host http://127.0.0.1:8000

Request names group by route (`/v1/members/[cid]`), so the report has one row per endpoint.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import time
from datetime import UTC, datetime
from typing import Any

from locust import between, events, task
from locust.contrib.fasthttp import FastHttpUser
from locust.env import Environment

from hooks.signing import sign

FIXTURE: dict[str, Any] = {}

FLASH_SALE_PERIOD = 30.0
"""Seconds between the starts of two flash sales."""
FLASH_SALE_SECONDS = 10.0
"""How long a sale lasts: storefront users send orders back to back, then calm down."""
SALE_PRODUCT = "p-sale"
NEW_CUSTOMER_SHARE = 0.3
"""Of the orders in the test, the share placed by customers Patron has not seen before."""

_started = time.monotonic()


@events.init.add_listener
def load_fixture(environment: Environment, **_: Any) -> None:
    path = os.environ.get("LOADTEST_FIXTURE")
    if not path:
        raise SystemExit("set LOADTEST_FIXTURE to the provisioning file (make loadtest writes one)")
    with open(path, encoding="utf-8") as file:
        FIXTURE.update(json.load(file))


def bearer(scope_or_token: str) -> dict[str, str]:
    token = FIXTURE["api_keys"].get(scope_or_token, scope_or_token)
    return {"Authorization": f"Bearer {token}"}


def in_flash_sale() -> bool:
    return (time.monotonic() - _started) % FLASH_SALE_PERIOD < FLASH_SALE_SECONDS


def flash_sale_wait(_: FastHttpUser) -> float:
    """Orders back to back during a sale, a calm trickle between sales."""
    return random.uniform(0.0, 0.05) if in_flash_sale() else random.uniform(1.0, 3.0)


def order(customer_id: str) -> dict[str, Any]:
    """An order.paid payload: in a sale most orders hold the sale product, beside one or two others."""
    lines = []
    if in_flash_sale() or random.random() < 0.2:
        lines.append({"product_id": SALE_PRODUCT, "category": "sale", "quantity": 1, "unit_price": 1999})
    for product in random.sample(FIXTURE["products"], random.randint(1, 2)):
        lines.append(
            {
                "product_id": product["product_id"],
                "category": product["category"],
                "quantity": random.randint(1, 3),
                "unit_price": product["price"],
            }
        )
    for number, line in enumerate(lines, 1):
        line.update(line_id=str(number), sku=line["product_id"].upper(), title=line["product_id"], discount=0)
    subtotal = sum(line["quantity"] * line["unit_price"] for line in lines)
    return {
        "order_id": f"lt-{secrets.token_hex(8)}",
        "customer": {
            "customer_id": customer_id,
            "email": f"{customer_id}@example.com",
            "marketing_consent": True,
        },
        "currency": "EUR",
        "subtotal": subtotal,
        "total": subtotal + 495,
        "placed_at": datetime.now(UTC).isoformat(),
        "lines": lines,
    }


class Storefront(FastHttpUser):
    """The shop's backend sending signed Standard Webhooks: orders (in bursts), the platform's
    redeliveries of the same message, refunds and customer updates."""

    weight = 3
    wait_time = flash_sale_wait

    def on_start(self) -> None:
        self.sent: list[tuple[str, bytes, dict[str, Any]]] = []
        """(webhook-id, body, order) of this user's recent orders, for redeliveries and refunds."""

    def post_event(
        self,
        name: str,
        event_type: str,
        data: dict[str, Any],
        *,
        msg_id: str | None = None,
        body: bytes | None = None,
        expect: tuple[str, ...] = ("applied",),
    ) -> None:
        msg_id = msg_id or f"msg_{secrets.token_hex(12)}"
        body = body or json.dumps({"type": event_type, "data": data}).encode()
        timestamp = int(time.time())
        headers = {
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(
                FIXTURE["webhook_secret"], msg_id=msg_id, timestamp=timestamp, body=body
            ),
            "content-type": "application/json",
        }
        with self.client.post(
            f"/v1/hooks/standard/{FIXTURE['store_id']}",
            data=body,
            headers=headers,
            name=name,
            catch_response=True,
        ) as response:
            status = response.json().get("status") if response.status_code == 200 else None
            if status not in expect:
                response.failure(f"{response.status_code} {status or response.text[:200]}")
            elif event_type == "order.paid" and status == "applied":
                self.sent = [*self.sent[-19:], (msg_id, body, data)]

    @task(20)
    def order_paid(self) -> None:
        customers = FIXTURE["customers"]
        new = random.random() < NEW_CUSTOMER_SHARE
        customer_id = f"lt-new-{secrets.token_hex(6)}" if new else random.choice(customers)
        self.post_event("webhook order.paid", "order.paid", order(customer_id))

    @task(2)
    def redelivery(self) -> None:
        """The platform sends a message again (its retry after a timeout): one effect, `duplicate`."""
        if self.sent:
            msg_id, body, data = random.choice(self.sent)
            self.post_event(
                "webhook order.paid (redelivery)",
                "order.paid",
                data,
                msg_id=msg_id,
                body=body,
                expect=("duplicate",),
            )

    @task(1)
    def order_refunded(self) -> None:
        if self.sent:
            _, _, paid = self.sent.pop(random.randrange(len(self.sent)))
            line = paid["lines"][0]
            refund = {
                "order_id": paid["order_id"],
                "refund_id": f"r-{secrets.token_hex(4)}",
                "amount": line["unit_price"],
                "lines": [{"line_id": line["line_id"], "quantity": 1}],
            }
            self.post_event("webhook order.refunded", "order.refunded", refund)

    @task(2)
    def customer_upserted(self) -> None:
        customer_id = random.choice(FIXTURE["customers"])
        customer = {
            "customer_id": customer_id,
            "email": f"{customer_id}@example.com",
            "first_name": "Load",
            "last_name": "Test",
            "birthday": None,
            "marketing_consent": random.random() < 0.8,
        }
        self.post_event(
            "webhook customer.upserted", "customer.upserted", customer, expect=("applied", "duplicate")
        )


class App(FastHttpUser):
    """A customer in the shop's app: the shop mints a member token at sign-in, then the app reads the
    member's profile, recommendations, suggestions and ledger with it."""

    weight = 6
    wait_time = between(1, 3)

    def on_start(self) -> None:
        self.customer = random.choice(FIXTURE["customers"])
        response = self.client.post(
            f"/v1/members/{self.customer}/tokens",
            json={"ttl_seconds": 3600},
            headers=bearer("storefront"),
            name="/v1/members/[cid]/tokens",
        )
        self.auth = bearer(response.json()["token"]) if response.status_code == 201 else bearer("app")

    @task(5)
    def profile(self) -> None:
        self.client.get(f"/v1/members/{self.customer}", headers=self.auth, name="/v1/members/[cid]")

    @task(4)
    def recommendations(self) -> None:
        chosen = random.choice(("mixed", "mixed", "buy_again", "discover"))
        self.client.get(
            f"/v1/members/{self.customer}/recommendations?list={chosen}&limit=10",
            headers=self.auth,
            name="/v1/members/[cid]/recommendations",
        )

    @task(2)
    def suggestions(self) -> None:
        self.client.get(
            f"/v1/members/{self.customer}/suggestions",
            headers=self.auth,
            name="/v1/members/[cid]/suggestions",
        )

    @task(1)
    def ledger(self) -> None:
        self.client.get(
            f"/v1/members/{self.customer}/ledger", headers=self.auth, name="/v1/members/[cid]/ledger"
        )


class ServiceDesk(FastHttpUser):
    """A call-centre agent: looks the caller up, opens a case, answers it, resolves it, notes a
    preference, and sees it all on the profile at once (read your writes)."""

    weight = 1
    wait_time = between(2, 5)

    @task
    def handle_a_call(self) -> None:
        customer = random.choice(FIXTURE["customers"])
        auth = bearer("channel")
        self.client.get(f"/v1/members/{customer}", headers=auth, name="/v1/members/[cid]")
        opened = self.client.post(
            f"/v1/members/{customer}/cases",
            json={
                "channel": "phone",
                "subject": "Parcel arrived damaged",
                "category": "delivery",
                "priority": random.choice(("low", "normal", "high")),
                "body": "The box was crushed; the mug inside is broken.",
            },
            headers=auth,
            name="/v1/members/[cid]/cases",
        )
        if opened.status_code != 201:
            return
        case_id = opened.json()["case_id"]
        for event in (
            {"kind": "response", "channel": "phone", "body": "Sorry about that: a new one ships today."},
            {"kind": "status", "channel": "phone", "status": "resolved"},
        ):
            self.client.post(
                f"/v1/cases/{case_id}/events", json=event, headers=auth, name="/v1/cases/[id]/events"
            )
        with self.client.get(
            f"/v1/members/{customer}",
            headers=auth,
            name="/v1/members/[cid] (after a case)",
            catch_response=True,
        ) as profile:
            if profile.status_code == 200 and any(
                c["case_id"] == case_id for c in profile.json()["open_cases"]
            ):
                profile.failure("the resolved case is still listed as open: a stale profile")


class Marketer(FastHttpUser):
    """One marketer trying out a change: reads the program, previews a lower top-tier threshold."""

    fixed_count = 1
    wait_time = between(5, 10)
    # A preview replays the care scan for each of the next 30 days: seconds, not milliseconds.
    network_timeout = 120.0

    @task(3)
    def preview(self) -> None:
        auth = bearer("marketer")
        program = self.client.get("/v1/program", headers=auth, name="/v1/program")
        if program.status_code != 200:
            return
        document = program.json()
        document.pop("version", None)
        levels = document["tiers"]["levels"]
        if len(levels) > 1:
            levels[-1]["threshold"] = max(levels[-2]["threshold"] + 1, int(levels[-1]["threshold"] * 0.9))
        self.client.post("/v1/program/preview", json=document, headers=auth, name="/v1/program/preview")

    @task(1)
    def care_report(self) -> None:
        self.client.get("/v1/care/report", headers=bearer("marketer"), name="/v1/care/report")
