"""The engine factory and the one way to run a transaction: `Database.run(fn, ...)`.

- PostgreSQL: `pool_pre_ping` so a restarted server costs one reconnect, not a failed item; a connect
  timeout (`PG_CONNECT_TIMEOUT` seconds, unless the URL sets `connect_timeout`) and TCP keepalives, so a host
  that silently drops packets fails a command (as a transient error, retried) instead of hanging it.
- SQLite: WAL journal, a busy timeout, and every transaction opened with `BEGIN IMMEDIATE` so a
  read-then-write (a claim) takes the write lock up front and no update is ever lost.
- Transient errors (connection refused/reset, server restarting, database locked) are retried with
  exponential backoff for `retry_seconds`: `DEFAULT_RETRY_SECONDS` (120) for workers and services, which
  must ride out a server restart, `INTERACTIVE_RETRY_SECONDS` (5) for CLI commands a person waits on,
  which should say "the database is down" quickly instead. The transaction body must therefore be safe
  to re-run, which compare-and-set transitions are (a re-run of an already committed transition simply matches no row).
- Workers open the database with `durable_commits=False`: on PostgreSQL their transactions use
  `synchronous_commit=off` (no WAL flush wait, ~3x faster per transition here). A server crash can then
  forget the last few hundred milliseconds of item transitions, never corrupt anything; a forgotten
  claim or success only means the item is processed again, and outputs are idempotent. Scheduler
  commands (submit, cancel, retry) keep fully durable commits.
- `Database.check_migrated()` refuses a database whose schema is not at the head revision, except the
  embedded default SQLite file, which upgrades itself.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from db.migrations import HEAD_REVISION
from wgfpgan.config import Settings, default_database_url, mask_url

log = logging.getLogger(__name__)

DEFAULT_RETRY_SECONDS = 120.0
PG_CONNECT_TIMEOUT = 10
INTERACTIVE_RETRY_SECONDS = 5.0

P = ParamSpec("P")
T = TypeVar("T")


class DatabaseNotMigrated(RuntimeError):
    """The schema is missing or older/newer than this code; the message says what to run."""


def is_embedded_default(url: str) -> bool:
    return url == default_database_url()


def create_db_engine(url: str, *, durable_commits: bool = True) -> Engine:
    """An engine for PostgreSQL or SQLite with the settings described in the module docstring."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        _configure_sqlite(engine)
        return engine
    engine = create_engine(url, pool_pre_ping=True, pool_recycle=1800, connect_args=_postgres_connect_args(parsed))
    if not durable_commits and parsed.get_backend_name() == "postgresql":

        @event.listens_for(engine, "connect")
        def _relaxed_commit(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SET synchronous_commit TO off")
            dbapi_connection.commit()

    return engine


def _postgres_connect_args(parsed) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """libpq options: a bounded connect and keepalives; options given in the URL's query win."""
    if parsed.get_backend_name() != "postgresql":
        return {}
    defaults = {
        "connect_timeout": PG_CONNECT_TIMEOUT,
        "keepalives": 1,
        "keepalives_idle": 30,
        "keepalives_interval": 10,
        "keepalives_count": 3,
    }
    return {k: v for k, v in defaults.items() if k not in parsed.query}


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None  # let us emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:  # type: ignore[no-untyped-def]
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def is_transient(exc: BaseException) -> bool:
    """Errors worth retrying: lost/refused connections and SQLite lock timeouts."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, OperationalError):
        message = str(exc.orig).lower()
        return any(
            word in message
            for word in (
                "database is locked",
                "connection",
                "server closed",
                "terminating",
                "shutting down",
                "starting up",
                "could not receive",
                "could not send",
                "timeout",
                "recovery mode",
            )
        )
    return False


class Database:
    """An engine plus a session factory; `run()` executes one transaction with retries."""

    def __init__(self, url: str, *, retry_seconds: float = DEFAULT_RETRY_SECONDS, durable_commits: bool = True) -> None:
        self.url = url
        self.engine = create_db_engine(url, durable_commits=durable_commits)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.retry_seconds = retry_seconds

    @classmethod
    def from_settings(
        cls,
        settings: Settings | None = None,
        *,
        check: bool = True,
        durable_commits: bool = True,
        retry_seconds: float = DEFAULT_RETRY_SECONDS,
    ) -> Database:
        settings = settings or Settings.from_env()
        database = cls(settings.database_url, retry_seconds=retry_seconds, durable_commits=durable_commits)
        if check:
            database.check_migrated()
        return database

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def run(self, fn: Callable[Concatenate[Session, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run `fn(session, *args, **kwargs)` in one transaction; commit; retry transient errors."""
        deadline = time.monotonic() + self.retry_seconds
        delay = 0.05
        while True:
            try:
                with self.sessions.begin() as session:
                    return fn(session, *args, **kwargs)
            except (OperationalError, DBAPIError) as exc:
                if not is_transient(exc) or time.monotonic() + delay > deadline:
                    raise
                log.warning("database unavailable (%s); retrying in %.1fs", _short(exc), delay)
                time.sleep(delay * (1 + random.random() / 2))
                delay = min(delay * 2, 5.0)

    def current_revision(self) -> str | None:
        def read(session: Session) -> str | None:
            if not self.engine.dialect.has_table(session.connection(), "alembic_version"):
                return None
            return session.execute(text("SELECT version_num FROM alembic_version")).scalar()

        return self.run(read)

    def check_migrated(self) -> None:
        """Raise DatabaseNotMigrated unless the schema is at head (the embedded default upgrades itself)."""
        revision = self.current_revision()
        if revision == HEAD_REVISION:
            return
        if is_embedded_default(self.url):
            from db.migrate import upgrade

            upgrade(self.url)
            return
        where = "empty" if revision is None else f"at revision {revision}"
        raise DatabaseNotMigrated(
            f"the status database {mask_url(self.url)} is {where}, this code needs {HEAD_REVISION}: "
            "run `wgfpgan db upgrade`"
        )

    def dispose(self) -> None:
        self.engine.dispose()


def _short(exc: BaseException) -> str:
    return mask_url(str(getattr(exc, "orig", exc)).splitlines()[0])[:200]
