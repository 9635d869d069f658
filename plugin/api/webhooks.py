"""Outbound webhooks (marketer keys): endpoints, and the record of deliveries with replay."""

from __future__ import annotations

from datetime import datetime

from litestar import Controller, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.status_codes import HTTP_201_CREATED, HTTP_202_ACCEPTED, HTTP_204_NO_CONTENT

from hooks import deliveries, endpoints
from hooks.deliveries import Delivery, DeliveryDetail, DeliveryPage, DeliveryStatus
from hooks.endpoints import (
    EventType,
    WebhookEndpoint,
    WebhookEndpointCreate,
    WebhookEndpointCreated,
    WebhookEndpointPage,
    WebhookEndpointUpdate,
)
from loyalty.repository import Connection
from loyalty.stores import Principal, Scope
from plugin.api.paging import Cursor, Limit, decode_cursor, encode_cursor
from plugin.auth import requires
from plugin.openapi import problems
from plugin.runtime import Runtime


class WebhookEndpointController(Controller):
    path = "/v1/webhook-endpoints"
    opt = requires(Scope.marketer)
    tags = ["outbound webhooks"]  # noqa: RUF012

    @post("/", status_code=HTTP_201_CREATED, summary="Register a webhook endpoint")
    async def create(
        self,
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
        runtime: NamedDependency[Runtime],
        data: JSONBody[WebhookEndpointCreate],
    ) -> WebhookEndpointCreated:
        """An endpoint receiving the listed events, signed as Standard Webhooks with the returned
        `whsec_` secret (shown only here). URLs on private, loopback or link-local addresses are
        refused (422 naming `url`)."""
        return await endpoints.create(
            conn,
            store_id=principal.store_id,
            data=data,
            allow_private=runtime.settings.allow_private_webhook_targets,
        )

    @get("/", summary="List webhook endpoints")
    async def list_endpoints(
        self,
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
        cursor: Cursor = None,
        limit: Limit = 50,
    ) -> WebhookEndpointPage:
        """The store's endpoints, oldest first, without their secrets."""
        after = None if cursor is None else decode_cursor(cursor, tuple[datetime, str])
        items, position = await endpoints.page(conn, store_id=principal.store_id, after=after, limit=limit)
        return WebhookEndpointPage(
            items=items, next_cursor=None if position is None else encode_cursor(position)
        )

    @get("/{endpoint_id:str}", summary="Get a webhook endpoint")
    async def get_endpoint(
        self,
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
        endpoint_id: FromPath[str],
    ) -> WebhookEndpoint:
        """One endpoint, without its secret."""
        return await endpoints.get(conn, store_id=principal.store_id, endpoint_id=endpoint_id)

    @patch("/{endpoint_id:str}", summary="Update a webhook endpoint")
    async def update(
        self,
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
        runtime: NamedDependency[Runtime],
        endpoint_id: FromPath[str],
        data: JSONBody[WebhookEndpointUpdate],
    ) -> WebhookEndpoint:
        """Change the URL, the events, the description, or enable / disable it. Re-enabling resumes
        the deliveries that were waiting, in order."""
        return await endpoints.update(
            conn,
            store_id=principal.store_id,
            endpoint_id=endpoint_id,
            data=data,
            allow_private=runtime.settings.allow_private_webhook_targets,
        )

    @delete("/{endpoint_id:str}", status_code=HTTP_204_NO_CONTENT, summary="Delete a webhook endpoint")
    async def delete_endpoint(
        self,
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
        endpoint_id: FromPath[str],
    ) -> None:
        """Delete an endpoint with its pending deliveries and their history."""
        await endpoints.delete(conn, store_id=principal.store_id, endpoint_id=endpoint_id)


class DeliveryController(Controller):
    path = "/v1/deliveries"
    opt = requires(Scope.marketer)
    tags = ["outbound webhooks"]  # noqa: RUF012

    @get("/", summary="List deliveries")
    async def list_deliveries(
        self,
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
        status: FromQuery[DeliveryStatus | None] = None,
        endpoint_id: FromQuery[str | None] = None,
        event: FromQuery[EventType | None] = None,
        cursor: Cursor = None,
        limit: Limit = 50,
    ) -> DeliveryPage:
        """Deliveries newest first, filtered by status, endpoint and event type."""
        before = None if cursor is None else decode_cursor(cursor, int)
        items, last = await deliveries.page(
            conn,
            store_id=principal.store_id,
            status=status,
            endpoint_id=endpoint_id,
            event_type=event,
            before=before,
            limit=limit,
        )
        return DeliveryPage(items=items, next_cursor=None if last is None else encode_cursor(last))

    @get("/{delivery_id:str}", summary="Get a delivery with its attempts")
    async def get_delivery(
        self,
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
        delivery_id: FromPath[str],
    ) -> DeliveryDetail:
        """One delivery, its payload and every attempt (status code, latency, error)."""
        return await deliveries.get(conn, store_id=principal.store_id, delivery_id=delivery_id)

    @post(
        "/{delivery_id:str}/replay",
        status_code=HTTP_202_ACCEPTED,
        responses=problems(409),
        summary="Replay a delivery",
    )
    async def replay(
        self,
        conn: NamedDependency[Connection],
        principal: NamedDependency[Principal],
        delivery_id: FromPath[str],
    ) -> Delivery:
        """Queue a delivery again now, as a new series of attempts with the same `webhook-id`. 409 while
        it is being attempted or its endpoint is disabled."""
        return await deliveries.replay(conn, store_id=principal.store_id, delivery_id=delivery_id)
