"""Opening the store (the SQLite file in the home, or a shared PostgreSQL database) and keeping its
schema current."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from peewee import EXCLUDED, Database, DatabaseError, OperationalError, PostgresqlDatabase, SqliteDatabase

from mlxgw.errors import MlxgwError
from mlxgw.store.postgres import is_url, lock_store, open_postgres, redacted
from mlxgw.store.tables import TABLES, KeyUsage, Meta, StoredResponse, db


def _v1(database: SqliteDatabase) -> None:
    database.create_tables(TABLES)


def _v2(database: SqliteDatabase) -> None:
    """Mappings gain `max_output_tokens`; a store that _v1 made before the column existed lacks it."""
    if "max_output_tokens" not in {column.name for column in database.get_columns("mapping")}:
        database.execute_sql("ALTER TABLE mapping ADD COLUMN max_output_tokens INTEGER")


def _v3(database: SqliteDatabase) -> None:
    """Stored Responses answers (`previous_response_id`); a store _v1 made before them lacks the table."""
    database.create_tables([StoredResponse], safe=True)


def _add_columns(database: Database, table: str, columns: dict[str, str]) -> None:
    """Add each of `columns` (name: SQL type) that `table` lacks: a store _v1 made from today's tables
    has them all already, one made before them none."""
    present = {column.name for column in database.get_columns(table)}
    for name, sql_type in columns.items():
        if name not in present:
            database.execute_sql(f"ALTER TABLE {table} ADD COLUMN {name} {sql_type}")


SPEND_COLUMNS = {
    "requestlog": {"client_key": "TEXT", "cost_usd": "REAL"},
    "clientkey": {
        "rpm": "INTEGER", "tpm": "INTEGER", "daily_usd": "REAL", "monthly_usd": "REAL",
        "rpm_clear_at": "REAL NOT NULL DEFAULT 0", "tpm_clear_at": "REAL NOT NULL DEFAULT 0",
    },
    "mapping": {"over_budget": "TEXT"},
}


def _v4(database: Database) -> None:
    """Spend and limits: each request's cost and client key, keys' limits and counters, the
    mappings' over_budget target."""
    for table, columns in SPEND_COLUMNS.items():
        _add_columns(database, table, columns)
    database.execute_sql("CREATE INDEX IF NOT EXISTS requestlog_client_key ON requestlog (client_key)")
    database.create_tables([KeyUsage], safe=True)


def _v5(database: Database) -> None:
    """The request log gains each request's cache reads and writes and its prefill time."""
    _add_columns(database, "requestlog", {"cached_tokens": "INTEGER", "cache_write_tokens": "INTEGER", "prefill_ms": "REAL"})


def _v6(database: Database) -> None:
    """Each request log row names the gateway replica that served it (replicas share one store)."""
    _add_columns(database, "requestlog", {"replica": "TEXT"})


def _v7(database: Database) -> None:
    """Mappings spread over equivalent backends: their `backends` and `balance`."""
    _add_columns(database, "mapping", {"backends": "TEXT NOT NULL DEFAULT '[]'", "balance": "TEXT"})


def _v8(database: Database) -> None:
    """Sticky failover: mappings gain `sticky_s`, and each request log row says whether its session's
    stickiness routed it."""
    _add_columns(database, "mapping", {"sticky_s": "REAL"})
    _add_columns(database, "requestlog", {"sticky": "BOOLEAN NOT NULL DEFAULT FALSE"})


def _v9(database: Database) -> None:
    """Stored responses gain their `owner`; the rows kept before it stay NULL: nobody's, reachable
    only while the gateway has no client keys."""
    _add_columns(database, "storedresponse", {"owner": "TEXT"})


# How long SQLite itself retries a store another connection is writing, before "database is locked".
BUSY_TIMEOUT_MS = 5000

# Append-only: each entry moves the schema one version up. Never edit a released step.
MIGRATIONS: list[Callable[[SqliteDatabase], None]] = [_v1, _v2, _v3, _v4, _v5, _v6, _v7, _v8, _v9]


def store_target(url: str | None, sqlite_path: Path) -> Path | str:
    """Where the store is: $MLXGW_STORE_URL, else [store] url, else the SQLite file."""
    return os.environ.get("MLXGW_STORE_URL") or url or sqlite_path


def open_db(target: Path | str) -> Database:
    """Open the store at `target` (a PostgreSQL URL, or an SQLite path), migrated to the current schema."""
    if is_url(target):
        database = open_postgres(target)
        shown = redacted(target)
    else:
        database = _sqlite(Path(target))
        shown = str(target)
    if db.obj is not None and not db.is_closed():
        db.close()
    db.initialize(database)
    try:
        database.connect(reuse_if_open=True)
        migrate(database)
    except DatabaseError as exc:
        raise (store_error(shown, exc) if isinstance(database, SqliteDatabase) else server_error(shown, exc)) from None
    return database


def shared() -> bool:
    """Whether the store is one that gateway replicas share (PostgreSQL)."""
    return isinstance(db.obj, PostgresqlDatabase)


def store_problem(sqlite_path: Path, exc: DatabaseError) -> MlxgwError:
    """What to tell a user whose open store failed after it was opened."""
    if shared():
        return server_error(redacted(db.obj.database), exc)
    return store_error(sqlite_path, exc)


def server_error(url: str, exc: DatabaseError) -> MlxgwError:
    reason = " ".join((str(exc) or type(exc).__name__).split())
    return MlxgwError(f"cannot use the store at {url}: {reason}")


def _sqlite(path: Path) -> SqliteDatabase:
    """The SQLite store at `path` (created 0600 if new), in WAL mode."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    return SqliteDatabase(
        str(path),
        # busy_timeout first: switching a new file to WAL takes a lock that another process may hold.
        pragmas={"busy_timeout": BUSY_TIMEOUT_MS, "journal_mode": "wal", "synchronous": "normal", "foreign_keys": 1},
        # A deferred transaction that reads, then writes, fails at once with "database is locked"
        # when another connection wrote meanwhile (the busy timeout cannot help it); IMMEDIATE takes
        # the write lock at BEGIN, where the busy timeout waits for it.
        lock_type="IMMEDIATE",
        check_same_thread=False,
    )


def store_error(path: Path, exc: DatabaseError) -> MlxgwError:
    """What to tell a user whose store cannot be used: busy (try again) or damaged (move it aside)."""
    reason = str(exc) or type(exc).__name__
    if isinstance(exc, OperationalError) and "locked" in reason:
        return MlxgwError(
            f"{path} is busy ({reason}): another process kept it locked for over {BUSY_TIMEOUT_MS / 1000:g} s; try again"
        )
    return MlxgwError(
        f"{path} is not a usable mlxgw store ({reason}). Move it aside (mv {path} {path}.bad) and run the "
        "command again: mappings and backends come back from the config, but API keys must be set again "
        "(`mlxgw creds set NAME`) and client keys created again (`mlxgw keys create NAME`)"
    )


def schema_version(database: Database) -> int:
    if not database.table_exists("meta"):
        return 0
    row = Meta.get_or_none(Meta.key == "schema_version")
    return int(row.value) if row else 0


def migrate(database: Database) -> None:
    """Run the steps the store lacks, all in one transaction (PostgreSQL's DDL is transactional
    too), under the store's lock: of two replicas starting on a fresh database, one migrates and
    the other then finds the schema current."""
    with database.atomic():
        lock_store(database)
        current = schema_version(database)
        for version, step in enumerate(MIGRATIONS[current:], start=current + 1):
            step(database)
            put_meta("schema_version", str(version))


def put_meta(key: str, value: str) -> None:
    Meta.insert(key=key, value=value).on_conflict(conflict_target=[Meta.key], update={Meta.value: EXCLUDED.value}).execute()


def generation() -> int:
    """A counter bumped by every change a daemon must pick up (cheap to poll)."""
    row = Meta.get_or_none(Meta.key == "generation")
    return int(row.value) if row else 0


def bump_generation() -> None:
    # One statement, so two processes bumping at once both count: a daemon must see the second too.
    Meta.insert(key="generation", value="1").on_conflict(
        conflict_target=[Meta.key], update={Meta.value: (Meta.value.cast("INTEGER") + 1).cast("TEXT")}
    ).execute()
