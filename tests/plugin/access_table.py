"""Who may call each route, written from the contract (/work/shared/API.md), not read from the code.

Every route of the app must have a row here: `test_access_matrix.py` enumerates the app's route table
and fails on a route without one, so a new route has to declare who may call it. A row names the
callers let in and one concrete request (path ids, body, headers) good enough for the handler to run,
so that a caller refused only by the handler's own lookup (another store, another member) is seen
refused, and a caller let in is seen getting past every check.

Callers (`Who`):
- `public`: anyone, with any credential or none (health, metrics, the OpenAPI document).
- `operator`: the `PATRON_ADMIN_TOKEN` (API.md "Operator"), nothing else.
- `signed`: a webhook signed with the store's own platform secret (API.md "Inbound webhooks").
- `storefront`, `marketer`, `channel`: a store's API key of that scope.
- `app_key`: the app's own API key. API.md: "Members (channel, app for its own member, marketer)" and
  "Apps act for one member with a member token": an app key identifies the app and nothing more
  (it ships inside the app, where anyone can read it), so it reads no member's data.
- `member`: a member token, acting for the member named in the path and for nobody else.

Where API.md names a section's callers more narrowly than the code allows (service cases: "channel";
the marketer may also read and work cases, metrics and policy), the code's addition is kept and
written here: it gives the marketer nothing API.md forbids.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class Who(enum.StrEnum):
    public = "public"
    operator = "operator"
    signed = "signed"
    storefront = "storefront"
    marketer = "marketer"
    channel = "channel"
    app_key = "app_key"
    member = "member"


@dataclass(frozen=True)
class Row:
    """Who may call a route, and the request that probes it."""

    who: frozenset[Who]
    params: dict[str, str] = field(default_factory=dict)
    """Path parameters: each names a seeded resource of the home store (see `Seed.resource`)."""
    query: str = ""
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    unknown: int = 404
    """What a caller let in gets for something its store does not have (the home store's, asked
    for with another store's credential)."""
    always: int | None = None
    """The status a public route answers whoever asks."""


def row(*who: Who, **request: Any) -> Row:
    return Row(who=frozenset(who), **request)


PUBLIC = row(Who.public)
OPERATOR = (Who.operator,)
MARKETER = (Who.marketer,)
# API.md "Members (channel, app for its own member, marketer)".
MEMBER_READERS = (Who.channel, Who.member, Who.marketer)
CID = {"cid": "member"}
CASE_ID = {"case_id": "case"}
PROGRAM_PREVIEW = {"points": {"per_currency_unit": 2}}
ENDPOINT = {"url": "https://93.184.216.34/hooks", "events": ["points.changed"]}
NEW_CASE = {"channel": "desk", "subject": "Parcel late", "category": "delivery", "body": "Where is it?"}

TABLE: dict[tuple[str, str], Row] = {
    # Operator (API.md "Operator"; README for /metrics and /schema).
    ("GET", "/health"): PUBLIC,
    ("GET", "/ready"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    ("GET", "/schema"): PUBLIC,
    ("GET", "/schema/openapi.json"): PUBLIC,
    ("GET", "/schema/scalar"): PUBLIC,
    # Litestar's catch-all for schema paths it does not render.
    ("GET", "/schema/{path:str}"): row(Who.public, params={"path": "openapi_yaml"}, always=404),
    # The admin page's files are public; what it shows comes from the API with the marketer's key.
    ("GET", "/admin"): row(Who.public, always=308),
    ("GET", "/admin/{name:str}"): row(Who.public, params={"name": "admin_asset"}, always=200),
    ("POST", "/v1/admin/stores"): row(*OPERATOR, json={"name": "Matrix shop"}),
    ("POST", "/v1/admin/stores/{store_id:str}/keys"): row(
        *OPERATOR, params={"store_id": "ops_store"}, json={"scope": "channel"}
    ),
    ("DELETE", "/v1/admin/stores/{store_id:str}/keys/{key_id:str}"): row(
        *OPERATOR, params={"store_id": "ops_store", "key_id": "ops_key"}
    ),
    ("POST", "/v1/admin/stores/{store_id:str}/platform-secrets"): row(
        *OPERATOR,
        params={"store_id": "ops_store"},
        json={"platform": "shopify", "secret": "shpss_rotated", "grace_seconds": 60},
    ),
    ("PUT", "/v1/admin/stores/{store_id:str}/platform-api/woocommerce"): row(
        *OPERATOR,
        params={"store_id": "ops_store"},
        json={"site_url": "https://shop.example", "consumer_key": "ck_1", "consumer_secret": "cs_1"},
    ),
    # Auth: any key, and a member token (it is an app acting for its member).
    ("GET", "/v1/me"): row(Who.storefront, Who.marketer, Who.channel, Who.app_key, Who.member),
    # Inbound webhooks: the platform's signature, no API key.
    ("POST", "/v1/hooks/standard/{store_id:str}"): row(Who.signed, params={"store_id": "store"}),
    ("POST", "/v1/hooks/shopify/{store_id:str}"): row(Who.signed, params={"store_id": "store"}),
    ("POST", "/v1/hooks/woocommerce/{store_id:str}"): row(Who.signed, params={"store_id": "store"}),
    # Program (marketer key).
    ("GET", "/v1/program"): row(*MARKETER),
    ("PUT", "/v1/program"): row(*MARKETER, json=PROGRAM_PREVIEW),
    ("POST", "/v1/program/preview"): row(*MARKETER, json=PROGRAM_PREVIEW),
    # Members.
    ("POST", "/v1/members/{cid:str}/tokens"): row(Who.storefront, Who.channel, params=CID),
    # Not in API.md: the admin page's member search; the store's staff (marketer, channel) only.
    ("GET", "/v1/members"): row(Who.marketer, Who.channel),
    ("GET", "/v1/members/{cid:str}"): row(*MEMBER_READERS, params=CID),
    ("GET", "/v1/members/{cid:str}/ledger"): row(*MEMBER_READERS, params=CID),
    ("POST", "/v1/members/{cid:str}/redemptions"): row(
        *MEMBER_READERS, params=CID, json={"reward_id": "voucher-5"}, headers={"Idempotency-Key": "matrix"}
    ),
    ("POST", "/v1/members/{cid:str}/adjustments"): row(
        *MARKETER, params=CID, json={"points": 1, "reason": "matrix"}
    ),
    ("DELETE", "/v1/members/{cid:str}"): row(*MARKETER, params={"cid": "erased_member"}),
    ("GET", "/v1/members/{cid:str}/preferences"): row(*MEMBER_READERS, params=CID),
    ("PATCH", "/v1/members/{cid:str}/preferences"): row(
        *MEMBER_READERS, params=CID, json={"channel": "web", "language": "de-DE"}
    ),
    ("GET", "/v1/members/{cid:str}/timeline"): row(*MEMBER_READERS, params=CID),
    # Read from Redis alone, under the caller's store: a member the store does not know gets the
    # store's cold start (empty without a model), as the home store's member does from another store.
    ("GET", "/v1/members/{cid:str}/recommendations"): row(*MEMBER_READERS, params=CID, unknown=200),
    ("GET", "/v1/members/{cid:str}/suggestions"): row(*MEMBER_READERS, params=CID),
    ("POST", "/v1/members/{cid:str}/suggestions/{suggestion_id:str}/dismiss"): row(
        *MEMBER_READERS, params=CID | {"suggestion_id": "suggestion"}
    ),
    ("POST", "/v1/members/{cid:str}/suggestions/{suggestion_id:str}/acted"): row(
        *MEMBER_READERS, params=CID | {"suggestion_id": "suggestion"}
    ),
    ("GET", "/v1/members/{cid:str}/changes"): row(*MEMBER_READERS, params=CID),
    ("GET", "/v1/members/{cid:str}/events"): row(*MEMBER_READERS, params=CID),
    # README: "marketer (export: app for its own)".
    ("GET", "/v1/members/{cid:str}/export"): row(Who.marketer, Who.member, params=CID),
    # Service cases (channel; the member's app for its own cases, "including rating a case").
    ("POST", "/v1/members/{cid:str}/cases"): row(*MEMBER_READERS, params=CID, json=NEW_CASE),
    ("GET", "/v1/members/{cid:str}/cases"): row(*MEMBER_READERS, params=CID),
    ("GET", "/v1/cases/{case_id:str}"): row(*MEMBER_READERS, params=CASE_ID),
    ("POST", "/v1/cases/{case_id:str}/events"): row(
        Who.channel, Who.marketer, params=CASE_ID, json={"kind": "note", "channel": "desk", "body": "x"}
    ),
    ("POST", "/v1/cases/{case_id:str}/satisfaction"): row(
        Who.channel, Who.member, params=CASE_ID, json={"score": 5}
    ),
    ("GET", "/v1/cases/metrics"): row(Who.channel, Who.marketer),
    ("GET", "/v1/cases/policy"): row(Who.channel, Who.marketer),
    ("PUT", "/v1/cases/policy"): row(*MARKETER, json={}),
    # Care (README: the report is the marketer's).
    ("GET", "/v1/care/report"): row(*MARKETER),
    # Outbound webhooks and their deliveries (marketer).
    ("POST", "/v1/webhook-endpoints"): row(*MARKETER, json=ENDPOINT),
    ("GET", "/v1/webhook-endpoints"): row(*MARKETER),
    ("GET", "/v1/webhook-endpoints/{endpoint_id:str}"): row(*MARKETER, params={"endpoint_id": "endpoint"}),
    ("PATCH", "/v1/webhook-endpoints/{endpoint_id:str}"): row(
        *MARKETER, params={"endpoint_id": "endpoint"}, json={"description": "matrix"}
    ),
    ("DELETE", "/v1/webhook-endpoints/{endpoint_id:str}"): row(
        *MARKETER, params={"endpoint_id": "doomed_endpoint"}
    ),
    ("GET", "/v1/deliveries"): row(*MARKETER),
    ("GET", "/v1/deliveries/{delivery_id:str}"): row(*MARKETER, params={"delivery_id": "delivery"}),
    ("POST", "/v1/deliveries/{delivery_id:str}/replay"): row(*MARKETER, params={"delivery_id": "delivery"}),
}
