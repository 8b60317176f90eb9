"""The store on PostgreSQL, for gateway replicas that share one: opening it (psycopg 3 through
Peewee's pool) and the one store-wide lock that migrations and config syncs take."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from peewee import Database, PostgresqlDatabase

from mlxgw.errors import MlxgwError
from mlxgw.fsutil import LockBusy

SCHEMES = ("postgresql://", "postgres://")
CONNECT_TIMEOUT_S = 10
POOL_SIZE = 32  # a daemon's threads (request checks, the log writer, reloads) each hold one while working
POOL_WAIT_S = 30
STALE_S = 300  # an idle connection older than this is reopened rather than reused
# pg_advisory_xact_lock's key: "mlxgw" in ASCII, so it is unlikely to be another program's.
LOCK_KEY = 0x6D6C786777


def is_url(target: object) -> bool:
    return isinstance(target, str) and target.startswith(SCHEMES)


def redacted(url: str) -> str:
    """The URL as it may be shown: any password replaced (one from MLXGW_STORE_URL is never printed)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def open_postgres(url: str) -> Database:
    import peewee
    from playhouse.pool import PooledPostgresqlDatabase

    if peewee.psycopg is None:
        raise MlxgwError("a PostgreSQL store needs psycopg: pip install 'mlxgw[postgres]'")

    # libpq takes only postgresql:// and postgres:// alike; Peewee hands the former on as a conninfo.
    conninfo = "postgresql://" + url.split("://", 1)[1]
    return PooledPostgresqlDatabase(
        conninfo,
        prefer_psycopg3=True,
        max_connections=POOL_SIZE,
        timeout=POOL_WAIT_S,
        stale_timeout=STALE_S,
        connect_timeout=CONNECT_TIMEOUT_S,
        application_name="mlxgw",
        # Peewee's FloatField is REAL, 4 bytes on PostgreSQL: Unix times (the rate limits' buckets)
        # and costs need the 8 bytes SQLite's REAL has.
        field_types={"FLOAT": "DOUBLE PRECISION"},
    )


def lock_store(database: Database, *, wait: bool = True) -> None:
    """Inside a transaction: wait until no other process holds the store's lock, and hold it until
    the transaction ends. Two replicas starting at once on a fresh database, or two syncing their
    configs, take turns. Without `wait`, raises LockBusy when another holds it (the daemon's
    reload tries again on its next poll rather than block its event loop). SQLite needs nothing:
    its IMMEDIATE transactions are one writer at a time."""
    if not isinstance(database, PostgresqlDatabase):
        return
    if wait:
        database.execute_sql("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
    elif not database.execute_sql("SELECT pg_try_advisory_xact_lock(%s)", (LOCK_KEY,)).fetchone()[0]:
        raise LockBusy("another mlxgw process is changing the shared store's config")
