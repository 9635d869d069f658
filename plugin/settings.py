"""Patron's configuration: one frozen Struct, read from `PATRON_*` variables and CLI flags."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

ENV_PREFIX = "PATRON_"
# The test harness reads its own variables; they are not Patron's configuration.
_IGNORED_PREFIXES = ("PATRON_TEST_",)

log = logging.getLogger(__name__)


class ConfigError(Exception):
    """A configuration value is invalid; the message is one line naming the variable."""


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    database_url: str | None = None
    """PostgreSQL URL. Unset: an embedded PostgreSQL is started under `data_dir`."""

    redis_url: str | None = None
    """Redis URL. Unset: an embedded Redis is started under `data_dir`."""

    data_dir: str = ".patron"
    """Where the embedded servers keep their data."""

    admin_token: str | None = None
    """Bearer token enabling the operator endpoints under `/v1/admin`. Unset: they answer 401."""

    host: str = "127.0.0.1"
    """Address `patron serve` binds to."""

    port: Annotated[int, Meta(ge=1, le=65535)] = 8000
    """Port `patron serve` binds to."""

    workers: Annotated[int, Meta(ge=1, le=256)] = 1
    """Server worker processes for `patron serve`."""

    worker: bool = True
    """Run the background worker inside `patron serve` (turn off when `patron worker` runs separately)."""

    metrics_port: Annotated[int, Meta(ge=1, le=65535)] | None = None
    """Port `patron worker` serves Prometheus metrics on (`/metrics`, bound to `host`). Unset: not
    served. `patron serve` answers `/metrics` on its own port."""
    train_in_worker: bool = True
    """The worker trains the recommender daily (in a child process). Turn off when a scheduler outside
    Patron runs `patron train`, such as the Kubernetes CronJob in deploy/k8s."""

    log_format: Literal["text", "json"] = "text"
    """`json` writes one JSON object per line, for log shippers."""

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """Minimum level of log lines."""

    db_pool_size: Annotated[int, Meta(ge=1, le=500)] = 10
    """Connections per process in the PostgreSQL pool."""

    redis_timeout_seconds: Annotated[float, Meta(gt=0, le=60)] = 1.0
    """Seconds to wait for Redis to connect or reply before serving from PostgreSQL alone (Redis is
    then skipped for a couple of seconds, so a hung Redis costs one wait, not one per request)."""

    key_cache_seconds: Annotated[float, Meta(ge=0, le=3600)] = 30.0
    """Seconds a verified API key is trusted without asking PostgreSQL again (revocations are pushed)."""

    delivery_retry_schedule: tuple[Annotated[int, Meta(ge=0)], ...] = (30, 120, 600, 3600, 21600, 86400)
    """Outbound delivery retry delays in seconds; the last attempt dead-letters."""

    rate_limit_window_seconds: Annotated[float, Meta(ge=1, le=3600)] = 60.0
    """The sliding window the rate limits below count requests in."""

    rate_limit_per_key: Annotated[int, Meta(ge=0)] = 120_000
    """Requests per window for one API key (a member token: per member); 0 turns the limit off."""

    rate_limit_per_store: Annotated[int, Meta(ge=0)] = 600_000
    """API requests per window for one store, all its keys and member tokens together; 0: off."""

    rate_limit_webhooks_per_store: Annotated[int, Meta(ge=0)] = 120_000
    """Inbound webhooks per window for one store (platforms retry a 429 later); 0: off."""

    allow_private_webhook_targets: bool = False
    """Allow outbound webhook URLs on private, loopback and link-local addresses (development and
    tests only: in production it would let a store make Patron call into its own network)."""

    @property
    def embedded(self) -> bool:
        """Whether any server has to be started under `data_dir`."""
        return self.database_url is None or self.redis_url is None


_FIELDS = frozenset(Settings.__struct_fields__)


def _env_name(field: str) -> str:
    return ENV_PREFIX + field.upper()


def _parse_env_value(field: str, raw: str) -> Any:
    if field == "delivery_retry_schedule":
        return [part.strip() for part in raw.split(",") if part.strip()]
    if field == "log_level":
        return raw.upper()
    return raw


def load_settings(environ: Mapping[str, str], **overrides: Any) -> Settings:
    """Build settings from the environment, then CLI overrides (those not None win).

    Raises ConfigError with one line naming the offending variable.
    """
    values: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name.startswith(_IGNORED_PREFIXES):
            continue
        field = name[len(ENV_PREFIX) :].lower()
        if field not in _FIELDS:
            log.warning("unknown configuration variable %s is ignored", name)
            continue
        if raw != "":
            values[field] = _parse_env_value(field, raw)
    flags = {key: value for key, value in overrides.items() if value is not None}
    values.update(flags)
    try:
        return msgspec.convert(values, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(_describe(exc, set(flags))) from None


def _describe(exc: msgspec.ValidationError, from_flags: set[str]) -> str:
    # msgspec says "Expected `int`, got `str` - at `$.port`"; name the variable instead of the path.
    message, _, path = str(exc).partition(" - at `$.")
    field = path.rstrip("`").split("[")[0].split(".")[0]
    if not field:
        return f"invalid configuration: {message}"
    source = f"--{field.replace('_', '-')}" if field in from_flags else _env_name(field)
    return f"invalid configuration {source}: {message}"
