"""`PatronPlugin`: mounts Patron into any Litestar application."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from litestar import Router
from litestar.config.app import AppConfig
from litestar.plugins import InitPlugin

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


class PatronPlugin(InitPlugin):
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
        )
        app_config.route_handlers.append(router)
        app_config.lifespan.append(lifespan(self.config.settings))
        return app_config
