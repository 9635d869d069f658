"""Ordered SQL migrations, applied once under a PostgreSQL advisory lock.

Files are `NNNN_name.sql` beside this module. N replicas starting together queue on the lock;
the first applies what is pending and the others find nothing left to do.
"""

from __future__ import annotations

import hashlib
import logging
from importlib import resources

import msgspec

from loyalty.repository import Connection

log = logging.getLogger(__name__)

# Any constant works as long as nothing else in the database uses it; this one spells "patron".
MIGRATION_LOCK_ID = 0x706174726F6E

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""
_SELECT_APPLIED = "SELECT version, name, checksum FROM schema_migrations ORDER BY version"
_INSERT_APPLIED = "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)"


class Migration(msgspec.Struct, frozen=True, kw_only=True):
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


class MigrationError(Exception):
    """The database's history disagrees with the migration files."""


def load_migrations() -> list[Migration]:
    found = []
    for entry in resources.files(__package__).iterdir():
        if not entry.name.endswith(".sql"):
            continue
        number, _, rest = entry.name.partition("_")
        found.append(Migration(version=int(number), name=rest.removesuffix(".sql"), sql=entry.read_text()))
    found.sort(key=lambda migration: migration.version)
    versions = [migration.version for migration in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migration files share a number: {versions}")
    return found


async def migrate(conn: Connection) -> list[Migration]:
    """Apply pending migrations; return those this call applied."""
    migrations = load_migrations()
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_ID)
    try:
        await conn.execute(_CREATE_TABLE)
        applied = {row["version"]: row for row in await conn.fetch(_SELECT_APPLIED)}
        done = []
        for migration in migrations:
            row = applied.get(migration.version)
            if row is not None:
                if row["checksum"] != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.version:04d}_{migration.name} changed after it was applied"
                    )
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(_INSERT_APPLIED, migration.version, migration.name, migration.checksum)
            log.info("applied migration %04d_%s", migration.version, migration.name)
            done.append(migration)
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_ID)
