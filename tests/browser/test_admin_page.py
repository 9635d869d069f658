"""The marketers' admin page in headless Chromium, used as a marketer would, against a real Patron.

Run with `make test-browser`; `make screenshots` keeps the screenshots in docs/admin/.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from plugin import care_jobs
from plugin.runtime import Runtime
from tests.browser.conftest import Shop, paid_order, screenshot
from tests.conftest import eventually
from tests.events import make_customer, send
from tests.receiver import Answer, Receiver

if TYPE_CHECKING:
    from playwright.async_api import Page

pytestmark = pytest.mark.browser


def expect(target: Any) -> Any:
    from playwright.async_api import expect as playwright_expect

    return playwright_expect(target)


async def sign_in(page: Page, shop: Shop, key: str | None = None) -> None:
    """With the keyboard alone: the page opens with the key field focused; Enter submits."""
    await page.goto(shop.url)
    await expect(page.get_by_label("Marketer API key")).to_be_focused()
    await page.keyboard.type(key or shop.marketer_key)
    await page.keyboard.press("Enter")
    if key is None:
        await expect(page.get_by_text("Live version")).to_be_visible()


async def program(api: httpx.AsyncClient, shop: Shop) -> tuple[dict[str, Any], str]:
    response = await api.get("/v1/program", headers=shop.marketer)
    return response.json(), response.headers["etag"]


async def publish(api: httpx.AsyncClient, shop: Shop, change: Any) -> None:
    document, etag = await program(api, shop)
    change(document)
    response = await api.put("/v1/program", json=document, headers=shop.marketer | {"If-Match": etag})
    assert response.status_code == 200, response.text


def member_row(page: Page, email: str) -> Any:
    return page.get_by_role("row").filter(has_text=email)


async def test_a_lower_threshold_is_previewed_published_and_moves_the_member(
    page: Page, shop: Shop, api: httpx.AsyncClient, shots: Path
) -> None:
    await page.goto(shop.url)
    await screenshot(page, shots, "sign-in", height=700)
    await sign_in(page, shop)
    await page.get_by_role("link", name="Members", exact=True).click()
    await expect(member_row(page, "ben@example.com")).to_contain_text("Member")
    await page.get_by_role("link", name="Program", exact=True).click()

    threshold = page.get_by_label("Level 2: Threshold")
    await expect(threshold).to_have_value("50000")
    await threshold.fill("40000")
    publish_button = page.get_by_role("button", name="Publish", exact=True)
    await expect(publish_button).to_be_disabled()
    await page.get_by_role("button", name="Preview impact").click()

    preview = page.locator("#preview-panel")
    await expect(preview.get_by_role("heading", name="Impact preview")).to_be_focused()
    await expect(preview).to_contain_text("1 member would change tier (1 Member → Silver)")
    moves = preview.get_by_role("table", name="Members moving tier at once")
    await expect(moves.get_by_role("cell")).to_have_text(["Member", "Silver", "1"])
    await expect(preview).to_contain_text("tiers.levels[1].threshold: 50000 → 40000")
    await expect(publish_button).to_be_enabled()
    await screenshot(page, shots, "program-preview", height=1700)

    # An edit after the preview takes the preview back; undoing it restores it.
    await threshold.fill("39000")
    await expect(publish_button).to_be_disabled()
    await expect(page.locator("#publish-hint")).to_have_text(re.compile("preview again"))
    await threshold.fill("40000")
    await expect(publish_button).to_be_enabled()

    await publish_button.click()
    await expect(page.get_by_role("status")).to_contain_text(
        "Published version 2. As previewed, 1 member changes tier (1 Member → Silver)."
    )
    await expect(page.get_by_text("Live version 2")).to_be_visible()
    await expect(publish_button).to_be_disabled()

    await page.get_by_role("link", name="Members", exact=True).click()
    await expect(member_row(page, "ben@example.com")).to_contain_text("Silver")
    await expect(member_row(page, "anna@example.com")).to_contain_text("Member")
    await expect(member_row(page, "cleo@example.com")).to_contain_text("Gold")
    await screenshot(page, shots, "members")

    await member_row(page, "ben@example.com").get_by_role("link", name="ben").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Ben Example (ben)")
    await expect(page.locator("#member-body")).to_contain_text("Silver since")
    ledger = page.get_by_role("table", name="Points ledger, newest first")
    await expect(ledger.get_by_role("row")).to_have_count(2)
    await expect(ledger).to_contain_text("+450")
    await screenshot(page, shots, "member")
    member = await api.get("/v1/members/ben", headers=shop.marketer)
    assert member.json()["tier"]["code"] == "silver"


async def test_a_stale_publish_says_so_and_keeps_the_edits(
    page: Page, shop: Shop, api: httpx.AsyncClient, shots: Path
) -> None:
    await sign_in(page, shop)
    threshold = page.get_by_label("Level 2: Threshold")
    await expect(threshold).to_have_value("50000")
    # Meanwhile another marketer publishes version 2.
    await publish(api, shop, lambda document: document["tiers"]["levels"][2].update(threshold=120_000))

    await threshold.fill("40000")
    await page.get_by_role("button", name="Preview impact").click()
    await page.get_by_role("button", name="Publish", exact=True).click()
    alert = page.get_by_role("alert")
    await expect(alert).to_contain_text("Not published: the program changed while you were editing")
    await expect(alert).to_contain_text("after you loaded version 1")
    await expect(alert).to_be_focused()
    await expect(threshold).to_have_value("40000")
    await expect(page.get_by_role("button", name="Publish", exact=True)).to_be_disabled()
    assert (await program(api, shop))[1] == '"v2"'
    await screenshot(page, shots, "program-conflict", height=1200)

    await alert.get_by_role("button", name="Load the live program").click()
    await expect(page.get_by_text("Live version 2")).to_be_visible()
    await expect(page.get_by_label("Level 3: Threshold")).to_have_value("120000")
    await expect(threshold).to_have_value("50000")
    await expect(page.get_by_role("alert")).to_have_count(0)


@pytest.mark.parametrize(
    ("label", "value", "at", "message"),
    [
        ("Level 2: Threshold", "-5", "Level 2: Threshold", "Expected `int` >= 0"),
        ("Level 2: Threshold", "400000", "Level 3: Threshold", "levels must ascend by threshold"),
        ("Reward 1: Cost (points)", "0", "Reward 1: Cost (points)", "Expected `int` >= 1"),
    ],
)
async def test_an_invalid_field_is_marked_in_place(
    page: Page, shop: Shop, shots: Path, label: str, value: str, at: str, message: str
) -> None:
    await sign_in(page, shop)
    await page.get_by_label(label).fill(value)
    await page.get_by_role("button", name="Preview impact").click()

    field = page.get_by_label(at)
    await expect(field).to_have_attribute("aria-invalid", "true")
    await expect(field).to_have_accessible_description(re.compile(re.escape(message)))
    summary = page.get_by_role("alert")
    await expect(summary).to_contain_text("Not previewed: one field needs a change")
    await expect(summary).to_be_focused()
    await expect(page.get_by_role("button", name="Publish", exact=True)).to_be_disabled()
    if value == "-5":
        await screenshot(page, shots, "program-invalid", height=1000)
    # The summary links to the field.
    await summary.get_by_role("button", name=re.compile(re.escape(message))).click()
    await expect(field).to_be_focused()
    # Fixed and previewed again, the mark goes.
    await page.get_by_label(label).fill("45000" if label.startswith("Level") else "100")
    await page.get_by_role("button", name="Preview impact").click()
    await expect(page.locator("#preview-panel")).to_be_visible()
    await expect(field).not_to_have_attribute("aria-invalid", "true")


async def test_rules_rewards_and_triggers_are_added_and_removed(
    page: Page, shop: Shop, api: httpx.AsyncClient
) -> None:
    await sign_in(page, shop)
    await page.get_by_label("New rule").select_option("category_bonus")
    await page.get_by_role("button", name="Add rule").click()
    rule = page.get_by_role("group", name="Rule 1: Category bonus")
    await expect(rule.get_by_label("Kind")).to_be_focused()
    await rule.get_by_label("Category").fill("coffee")
    await rule.get_by_label("Multiplier").fill("3")
    await page.get_by_role("button", name="Remove reward 2").click()
    await expect(page.get_by_role("button", name="Add reward")).to_be_focused()
    await page.get_by_label("New trigger").select_option("birthday")
    await page.get_by_role("button", name="Add trigger").click()
    trigger = page.get_by_role("group", name="Trigger 1: Birthday")
    await trigger.get_by_label("Gives a gift").check()
    await trigger.get_by_label("Value").fill("700")
    await page.get_by_label("Gift budget per month").fill("25000")
    await page.get_by_role("button", name="Preview impact").click()
    await expect(page.locator("#preview-panel")).to_contain_text(
        'rules[0]: (none) → {"kind":"category_bonus"'
    )
    await page.get_by_role("button", name="Publish", exact=True).click()
    await expect(page.get_by_text("Live version 2")).to_be_visible()

    document, _ = await program(api, shop)
    assert document["rules"] == [{"kind": "category_bonus", "category": "coffee", "multiplier": 3.0}]
    assert [reward["id"] for reward in document["rewards"]] == ["voucher-5"]
    assert document["care"]["triggers"] == [
        {"kind": "birthday", "days_before": 0, "gift": {"kind": "voucher", "value": 700, "product_id": None}}
    ]
    assert document["care"]["gift_budget_per_month"] == 25_000


async def test_dead_letters_are_listed_with_their_attempts_and_replayed(
    page: Page, shop: Shop, api: httpx.AsyncClient, shots: Path
) -> None:
    async with Receiver(lambda _: Answer(status=503)) as receiver:
        created = await api.post(
            "/v1/webhook-endpoints",
            json={"url": receiver.url(), "events": ["tier.changed"], "description": "CRM"},
            headers=shop.marketer,
        )
        assert created.status_code == 201, created.text
        await publish(api, shop, lambda document: document["tiers"]["levels"][1].update(threshold=40_000))

        async def dead() -> bool:
            response = await api.get("/v1/deliveries", params={"status": "dead"}, headers=shop.marketer)
            return any(item["customer_id"] == "ben" for item in response.json()["items"])

        assert await eventually(dead, within=30)
        heard = len(receiver.requests)
        assert heard == 2  # the attempt and its one retry

        await sign_in(page, shop)
        await page.get_by_role("link", name="Deliveries").click()
        await expect(page.get_by_role("table", name="Webhook endpoints")).to_contain_text(receiver.url())
        await page.get_by_label("Status").select_option("dead")
        await page.get_by_role("button", name="Show").click()
        deliveries = page.get_by_role("table", name="Deliveries, newest first")
        row = deliveries.get_by_role("row").filter(has_text="tier.changed")
        await expect(row).to_have_count(1)
        await expect(row).to_contain_text("ben")
        await expect(row).to_contain_text("dead letter")
        await expect(row).to_contain_text("HTTP 503")

        await row.get_by_role("button", name=re.compile("^dlv_")).click()
        await expect(page.get_by_role("heading", name=re.compile("^Delivery dlv_"))).to_be_focused()
        attempts = page.get_by_role("table", name="Attempts, oldest first")
        await expect(attempts.get_by_role("row")).to_have_count(3)
        await screenshot(page, shots, "deliveries", height=1100)

        await row.get_by_role("button", name=re.compile("^Replay")).click()
        await expect(page.get_by_role("status")).to_contain_text(re.compile(r"Replay of dlv_\w+ queued"))
        await receiver.wait_for(lambda: len(receiver.requests) > heard, timeout=15)


async def test_care_report_shows_budget_use_and_conversions(
    page: Page, shop: Shop, api: httpx.AsyncClient, runtime: Runtime, shots: Path
) -> None:
    timezone = ZoneInfo("Europe/Berlin")
    today = datetime.now(timezone).date()
    for cid in ("anna", "ben"):
        customer = make_customer(customer_id=cid, first_name=cid.title(), last_name="Example",
                                 email=f"{cid}@example.com", birthday=f"1992-{today:%m-%d}")  # fmt: skip
        await send(api, shop.store, "customer.upserted", customer)

    def birthday_gifts(document: dict[str, Any]) -> None:
        document["care"] |= {
            "gift_budget_per_month": 20_000,
            "quiet_hours": {"start": "00:00", "end": "00:00"},
            "triggers": [{"kind": "birthday", "days_before": 0, "gift": {"kind": "voucher", "value": 500}}],
        }

    await publish(api, shop, birthday_gifts)
    result = await care_jobs.scan_store(runtime, store_id=shop.store.store_id)
    assert result is not None
    later = (datetime.now(UTC) + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    await paid_order(api, shop.store, make_customer(customer_id="anna"), 2_000, placed_at=later)

    await sign_in(page, shop)
    await page.get_by_role("link", name="Care").click()
    report = page.get_by_role("table", name=re.compile("^Care actions in"))
    await expect(report.get_by_role("cell")).to_have_text(["birthday", "gift", "2", "1,000", "1", "50.0 %"])
    await expect(page.locator("#care-body")).to_contain_text("1,000 of 20,000 (minor units), 5.0 %")
    await expect(page.locator("#care-budget-meter")).to_have_attribute("value", "1000")
    await screenshot(page, shots, "care", height=800)


@pytest.mark.parametrize(
    ("scope", "says"),
    [
        ("channel", "This is a channel key; the admin page needs the store's marketer key."),
        (None, "Patron does not know this key, or it was revoked."),
    ],
)
async def test_only_a_marketer_key_signs_in(page: Page, shop: Shop, scope: str | None, says: str) -> None:
    key = shop.store.api_keys[scope] if scope else "pk_marketer_not-a-key"
    await sign_in(page, shop, key=key)
    field = page.get_by_label("Marketer API key")
    await expect(field).to_have_accessible_description(says)
    await expect(field).to_be_focused()
    await expect(page.get_by_role("navigation")).to_have_count(0)
    assert await page.evaluate("sessionStorage.length") == 0


async def test_the_key_lives_in_the_tab_until_sign_out(page: Page, shop: Shop) -> None:
    await sign_in(page, shop)
    assert await page.evaluate("sessionStorage.getItem('patron.admin.key')") == shop.marketer_key
    assert await page.evaluate("localStorage.length + document.cookie.length") == 0
    await page.reload()
    await expect(page.get_by_text("Live version")).to_be_visible()
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await expect(page.get_by_role("status")).to_contain_text("Signed out; the key is forgotten.")
    assert await page.evaluate("sessionStorage.length") == 0
