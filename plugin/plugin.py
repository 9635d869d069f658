"""`PatronPlugin`: mounts Patron into any Litestar application."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from litestar import Router
from litestar.config.app import AppConfig
from litestar.plugins import InitPlugin, ReceiveRoutePlugin
from litestar.routes import BaseRoute, HTTPRoute

from plugin import admin_page
from plugin.api import (
    admin,
    care,
    cases,
    health,
    hooks,
    me,
    member_data,
    members,
    platforms,
    preferences,
    program,
    recommendations,
    webhooks,
)
from plugin.auth import authenticate
from plugin.deps import DEPENDENCIES
from plugin.errors import EXCEPTION_HANDLERS
from plugin.lifespan import lifespan
from plugin.logs import RequestIdMiddleware
from plugin.metrics import MetricsController, MetricsMiddleware
from plugin.openapi import document_problems
from plugin.request_bodies import API_MAX_BODY_BYTES, check_body
from plugin.settings import Settings, load_settings

ROUTE_HANDLERS = [
    health.health,
    health.ready,
    admin.AdminController,
    me.me,
    program.ProgramController,
    hooks.standard,
    platforms.PlatformController,
    hooks.shopify_hook,
    hooks.woocommerce_hook,
    members.list_members,
    members.MembersController,
    webhooks.WebhookEndpointController,
    webhooks.DeliveryController,
    preferences.PreferencesController,
    cases.MemberCasesController,
    cases.CasesController,
    member_data.MemberDataController,
    care.SuggestionsController,
    care.care_report,
    recommendations.recommendations,
    admin_page.admin_page,
    admin_page.admin_asset,
]


@dataclass(frozen=True)
class PatronConfig:
    """How Patron is mounted. `settings` defaults to the `PATRON_*` environment."""

    settings: Settings = field(default_factory=lambda: load_settings(os.environ))
    path: str = "/"
    """Where Patron's routes live inside the host application."""
    metrics: bool = True
    """Serve Prometheus metrics at `/metrics` (turn off if the host app already exposes its own)."""


class PatronPlugin(InitPlugin, ReceiveRoutePlugin):
    """Adds Patron's routes (behind its own auth, errors and metrics), lifespan and dependencies."""

    def __init__(self, config: PatronConfig | None = None) -> None:
        self.config = config or PatronConfig()

    def on_app_init(self, app_config: AppConfig) -> AppConfig:
        handlers: list[object] = list(ROUTE_HANDLERS)
        if self.config.metrics:
            handlers.append(MetricsController)
        router = Router(
            path=self.config.path,
            route_handlers=handlers,  # type: ignore[arg-type]
            dependencies=DEPENDENCIES,
            exception_handlers=EXCEPTION_HANDLERS,
            guards=[authenticate],
            middleware=[RequestIdMiddleware, MetricsMiddleware],
            before_request=check_body,
            request_max_body_size=API_MAX_BODY_BYTES,
        )
        app_config.route_handlers.append(router)
        app_config.lifespan.append(lifespan(self.config.settings))
        return app_config

    def receive_route(self, route: BaseRoute) -> None:
        """Document the problem+json answers of Patron's routes (the host's are left alone)."""
        if isinstance(route, HTTPRoute) and all(
            authenticate in handler.resolve_guards() for handler in route.route_handlers
        ):
            document_problems(route)
