"""Service cases through the API: lifecycle, promises, breaches, ratings, metrics, who may do what."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from loyalty.stores import StoreCreated
from plugin import case_jobs
from plugin.repository.jobs import Job
from plugin.runtime import Runtime
from tests.conftest import make_store
from tests.members import new_member
from tests.service import key, member_token, profile

Client = httpx.AsyncClient
NEW_CASE = {
    "channel": "chat",
    "subject": "Parcel damaged",
    "category": "delivery",
    "priority": "high",
    "body": "Box crushed",
}


async def open_case(client: Client, cid: str, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    response = await client.post(f"/v1/members/{cid}/cases", json=NEW_CASE | body, headers=headers)
    assert response.status_code == 201, response.text
    case: dict[str, Any] = response.json()
    return case


async def event(client: Client, case_id: str, store: StoreCreated, **body: Any) -> httpx.Response:
    return await client.post(
        f"/v1/cases/{case_id}/events", json={"channel": "phone"} | body, headers=key(store, "channel")
    )


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


class TestLifecycle:
    async def test_open_respond_resolve_rate(self, client: Client, store: StoreCreated) -> None:
        cid = await new_member(client, store, points=10)
        case = await open_case(client, cid, key(store, "channel"))
        assert case["status"] == "open"
        opened = at(case["opened_at"])
        assert at(case["first_response_due"]) == opened + timedelta(hours=4)
        assert at(case["resolution_due"]) == opened + timedelta(hours=24)
        case_id = case["case_id"]
        assert (await event(client, case_id, store, kind="note", body="called courier")).status_code == 201
        responded = (
            await event(client, case_id, store, kind="response", body="Sorry!", status="pending")
        ).json()
        assert responded["status"] == "pending"
        assert responded["first_response_at"] is not None
        assert responded["first_response_breached"] is False
        resolved = (await event(client, case_id, store, kind="status", status="resolved")).json()
        assert resolved["resolved_at"] is not None
        app = await member_token(client, store, cid)
        rated = await client.post(
            f"/v1/cases/{case_id}/satisfaction", json={"score": 5, "comment": "great"}, headers=app
        )
        assert rated.status_code == 201, rated.text
        assert rated.json()["satisfaction_score"] == 5
        full = (await client.get(f"/v1/cases/{case_id}", headers=key(store, "channel"))).json()
        assert [e["kind"] for e in full["events"]] == ["opened", "note", "response", "status", "satisfaction"]
        assert [e["channel"] for e in full["events"]][:2] == ["chat", "phone"]
        # The member's app sees its case without the internal note.
        own = (await client.get(f"/v1/cases/{case_id}", headers=app)).json()
        assert "note" not in [e["kind"] for e in own["events"]]

    async def test_transitions_and_reopen(self, client: Client, store: StoreCreated) -> None:
        cid = await new_member(client, store, points=10)
        case_id = (await open_case(client, cid, key(store, "channel")))["case_id"]
        assert (await event(client, case_id, store, kind="status", status="closed")).status_code == 201
        rated_early = await client.post(
            f"/v1/cases/{case_id}/satisfaction", json={"score": 3}, headers=key(store, "channel")
        )
        assert rated_early.status_code == 201
        reopened = (await event(client, case_id, store, kind="status", status="open")).json()
        assert reopened["status"] == "open"
        assert reopened["resolved_at"] is None
        assert (
            await event(client, case_id, store, kind="status", status="open")
        ).status_code == 201  # no move
        assert (await event(client, case_id, store, kind="status")).status_code == 422

    async def test_rating_needs_resolution(self, client: Client, store: StoreCreated) -> None:
        cid = await new_member(client, store, points=10)
        case_id = (await open_case(client, cid, key(store, "channel")))["case_id"]
        response = await client.post(
            f"/v1/cases/{case_id}/satisfaction", json={"score": 4}, headers=key(store, "channel")
        )
        assert response.status_code == 409

    async def test_idempotency_key_opens_once(self, client: Client, store: StoreCreated) -> None:
        cid = await new_member(client, store, points=10)
        headers = key(store, "channel") | {"Idempotency-Key": "open-1"}
        first = await client.post(f"/v1/members/{cid}/cases", json=NEW_CASE, headers=headers)
        again = await client.post(f"/v1/members/{cid}/cases", json=NEW_CASE, headers=headers)
        assert again.json()["case_id"] == first.json()["case_id"]
        assert again.headers["Idempotent-Replayed"] == "true"
        listed = (await client.get(f"/v1/members/{cid}/cases", headers=key(store, "channel"))).json()
        assert len(listed["items"]) == 1


class TestPromises:
    async def test_store_policy_in_business_hours(
        self, client: Client, store: StoreCreated, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        policy = (await client.get("/v1/cases/policy", headers=key(store, "marketer"))).json()
        policy["targets"]["high"] = {
            "first_response_minutes": 60,
            "resolution_minutes": 480,
            "business_hours": True,
        }
        put = await client.put("/v1/cases/policy", json=policy, headers=key(store, "marketer"))
        assert put.status_code == 200, put.text
        assert (
            await client.put("/v1/cases/policy", json=policy, headers=key(store, "channel"))
        ).status_code == 403
        cid = await new_member(client, store, points=10)
        friday_evening = datetime(2026, 3, 6, 16, 30, tzinfo=UTC)  # 17:30 in Berlin: closed
        monkeypatch.setattr(runtime, "clock", lambda: friday_evening)
        case = await open_case(client, cid, key(store, "channel"))
        assert at(case["first_response_due"]) == datetime(2026, 3, 9, 9, 0, tzinfo=UTC)  # Mon 10:00 CET
        assert at(case["resolution_due"]) == datetime(2026, 3, 9, 16, 0, tzinfo=UTC)  # Mon 17:00 CET

    async def test_breach_job_flags_and_profile_shows_breached_first(
        self, client: Client, store: StoreCreated, runtime: Runtime, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        cid = await new_member(client, store, points=10)
        now = datetime.now(UTC)
        late = await open_case(client, cid, key(store, "channel"), priority="urgent", subject="Late")
        calm = await open_case(client, cid, key(store, "channel"), priority="low", subject="Calm")
        monkeypatch.setattr(runtime, "clock", lambda: now + timedelta(hours=2))
        await case_jobs.flag_breaches(
            runtime,
            Job(
                job_id=0,
                kind=case_jobs.BREACHES,
                store_id=store.store_id,
                payload={},
                attempts=1,
                max_attempts=3,
            ),
        )
        async with runtime.pool.acquire() as conn:
            flagged = await conn.fetchval(
                "SELECT first_response_breached FROM cases WHERE store_id = $1 AND case_id = $2",
                store.store_id,
                late["case_id"],
            )
            outbox = await conn.fetch(
                "SELECT event_type FROM outbox WHERE store_id = $1 AND customer_id = $2 ORDER BY event_id",
                store.store_id,
                cid,
            )
        assert flagged is True
        assert [row["event_type"] for row in outbox][-3:] == ["case.opened", "case.opened", "case.updated"]
        shown = await profile(client, cid, await member_token(client, store, cid))
        assert [c["case_id"] for c in shown["open_cases"]] == [late["case_id"], calm["case_id"]]
        assert shown["open_cases"][0]["breached"] is True
        assert shown["open_cases"][0]["first_response_due"] == late["first_response_due"]
        # Running it again flags nothing new.
        await case_jobs.flag_breaches(
            runtime,
            Job(
                job_id=0,
                kind=case_jobs.BREACHES,
                store_id=store.store_id,
                payload={},
                attempts=1,
                max_attempts=3,
            ),
        )
        async with runtime.pool.acquire() as conn:
            breaches = await conn.fetchval(
                "SELECT count(*) FROM case_events WHERE store_id = $1 AND kind = 'breach'", store.store_id
            )
        assert breaches == 1


class TestMetrics:
    async def test_by_channel_and_category(self, client: Client, store: StoreCreated) -> None:
        cid = await new_member(client, store, points=10)
        one = await open_case(client, cid, key(store, "channel"), channel="chat", category="delivery")
        await open_case(client, cid, key(store, "channel"), channel="phone", category="billing")
        await event(client, one["case_id"], store, kind="response", body="on it", status="resolved")
        await client.post(
            f"/v1/cases/{one['case_id']}/satisfaction", json={"score": 4}, headers=key(store, "channel")
        )
        report = (await client.get("/v1/cases/metrics", headers=key(store, "marketer"))).json()
        assert report["total"]["cases"] == 2
        assert report["total"]["open"] == 1
        assert report["total"]["mean_satisfaction"] == 4.0
        assert report["total"]["breach_rate"] == 0.0
        assert report["total"]["median_first_response_seconds"] is not None
        assert [m["channel"] for m in report["by_channel"]] == ["chat", "phone"]
        assert [m["category"] for m in report["by_category"]] == ["billing", "delivery"]
        assert (await client.get("/v1/cases/metrics", headers=key(store, "app"))).status_code == 403


class TestAuthorization:
    async def test_member_token_sees_and_opens_only_its_own(
        self, client: Client, store: StoreCreated
    ) -> None:
        cid = await new_member(client, store, points=10)
        other = await new_member(client, store, points=10)
        theirs = await open_case(client, other, key(store, "channel"))
        app = await member_token(client, store, cid)
        mine = await open_case(client, cid, app, channel="app")
        assert (await client.get(f"/v1/cases/{mine['case_id']}", headers=app)).status_code == 200
        assert (await client.get(f"/v1/cases/{theirs['case_id']}", headers=app)).status_code == 404
        assert (
            await client.post(f"/v1/members/{other}/cases", json=NEW_CASE, headers=app)
        ).status_code == 404
        assert (await client.get(f"/v1/members/{other}/cases", headers=app)).status_code == 404
        assert (
            await client.post(
                f"/v1/cases/{mine['case_id']}/events",
                json={"kind": "note", "channel": "app", "body": "x"},
                headers=app,
            )
        ).status_code == 403
        rate_theirs = await client.post(
            f"/v1/cases/{theirs['case_id']}/satisfaction", json={"score": 1}, headers=app
        )
        assert rate_theirs.status_code == 404
        # An app key (no member) may not open cases for members.
        assert (
            await client.post(f"/v1/members/{cid}/cases", json=NEW_CASE, headers=key(store, "app"))
        ).status_code == 403

    async def test_another_store_key_sees_nothing(self, client: Client, store: StoreCreated) -> None:
        cid = await new_member(client, store, points=10)
        case = await open_case(client, cid, key(store, "channel"))
        other_store = await make_store(client)
        foreign = key(other_store, "channel")
        assert (await client.get(f"/v1/cases/{case['case_id']}", headers=foreign)).status_code == 404
        assert (await event(client, case["case_id"], other_store, kind="note", body="x")).status_code == 404
        assert (await client.get(f"/v1/members/{cid}", headers=foreign)).status_code == 404
        assert (
            await client.patch(
                f"/v1/members/{cid}/preferences", json={"channel": "web", "tags": []}, headers=foreign
            )
        ).status_code == 404
