"""The composition root: `create_app()` builds the Patron service."""

from __future__ import annotations

import os

from litestar import Litestar
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin
from prometheus_client import disable_created_metrics

from plugin.errors import EXCEPTION_HANDLERS
from plugin.logs import RequestIdMiddleware, configure_logging
from plugin.plugin import PatronConfig, PatronPlugin
from plugin.settings import Settings, load_settings

API_DESCRIPTION = """Loyalty and personalized care for e-commerce storefronts.

Authenticate with `Authorization: Bearer <api key>`; each key belongs to one store and one scope.
Errors are `application/problem+json` with a stable `type`."""


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or load_settings(os.environ)
    configure_logging(settings)
    # A `_created` series beside every counter and histogram doubles what Prometheus stores for
    # nothing a dashboard reads (a host app mounting the plugin keeps its own choice).
    disable_created_metrics()  # type: ignore[no-untyped-call]
    app = Litestar(
        plugins=[PatronPlugin(PatronConfig(settings=settings))],
        # Requests outside Patron's routes (unknown paths, wrong methods) still answer problem+json.
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=OpenAPIConfig(
            title="Patron",
            version="1",
            description=API_DESCRIPTION,
            path="/schema",
            render_plugins=[ScalarRenderPlugin()],
            use_handler_docstrings=True,
        ),
        request_max_body_size=1024 * 1024,
        # configure_logging owns the root logger; Litestar's default would replace its format.
        logging_config=None,
    )
    # Litestar's middleware wraps route handlers only, so an unknown path or method is answered
    # outside any of it; wrapping the whole handler gives those answers a request id as well.
    app.asgi_handler = RequestIdMiddleware(app.asgi_handler)
    return app
