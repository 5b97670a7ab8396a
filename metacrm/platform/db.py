"""Database engines for SQLite (the embedded default) and PostgreSQL (production).

SQLite gets WAL, foreign keys, a busy timeout and case-sensitive LIKE on every connection.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

SQLITE_BUSY_TIMEOUT_MS = 30_000
WRITE_OPTION = "metacrm_write"
OPTIMIZE_EVERY_CHECKINS = 5000
_TRANSACTION = "metacrm_transaction"
_AFTER_COMMIT = "after_commit"
# Rows ANALYZE samples per index: enough to tell a 1-in-5 picklist from a unique amount.
ANALYSIS_LIMIT = 10_000


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def make_engine(url: str, **kwargs: Any) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, **kwargs)
    if parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":
            url = parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 20)
        kwargs.setdefault("pool_pre_ping", True)
        return create_engine(url, **kwargs)
    raise ValueError(
        f"unsupported database {parsed.get_backend_name()!r}: use sqlite or postgresql"
    )


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value


def _sqlite_engine(url: str, **kwargs: Any) -> Engine:
    connect_args = kwargs.pop("connect_args", {})
    connect_args.setdefault("check_same_thread", False)
    connect_args.setdefault("timeout", SQLITE_BUSY_TIMEOUT_MS / 1000)
    kwargs.setdefault("pool_size", 16)
    kwargs.setdefault("max_overflow", 16)
    engine = create_engine(url, connect_args=connect_args, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy own transactions: pysqlite's own BEGIN handling defers it too late for
        # DDL and would break transactional schema changes.
        dbapi_conn.isolation_level = None
        # SQLite's own lower()/upper() only know ASCII; PostgreSQL's know every letter.
        dbapi_conn.create_function("lower", 1, _lower, deterministic=True)
        dbapi_conn.create_function("upper", 1, _upper, deterministic=True)
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA case_sensitive_like=ON")
        cursor.execute(f"PRAGMA analysis_limit={ANALYSIS_LIMIT}")
        cursor.close()

    checkins = itertools.count(1)

    @event.listens_for(engine, "checkin")
    def _now_and_then_optimize(dbapi_conn: Any, _record: Any) -> None:
        # Keeps planner statistics fresh as tables grow; cheap when nothing needs doing.
        if next(checkins) % OPTIMIZE_EVERY_CHECKINS == 0:
            with suppress(sqlite3.Error):  # busy: the next round will do it
                dbapi_conn.execute("PRAGMA optimize")

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A writer takes the lock up front (IMMEDIATE), so two writers queue on busy_timeout
        # instead of failing with "database is locked" when one upgrades a read lock. Readers
        # begin deferred and never wait for writers (WAL).
        writing = conn.get_execution_options().get(WRITE_OPTION, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")

    return engine


def refresh_statistics(engine: Engine) -> None:
    """Give SQLite's query planner row statistics (PostgreSQL's autovacuum keeps its own).

    Without them SQLite may pick a poor index for a filtered, sorted list — e.g. walk every
    row of one stage and sort, instead of reading the amount index in order. The limit keeps
    this to milliseconds on large tables.
    """
    if not is_sqlite(engine):
        return
    with engine.connect() as conn:
        conn.exec_driver_sql(f"PRAGMA analysis_limit={ANALYSIS_LIMIT}")
        conn.exec_driver_sql("ANALYZE")
        conn.commit()


@contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that will write; commits on success, rolls back on error.
    What `after_commit` registered runs once the commit has succeeded, never after a rollback."""
    with engine.connect() as conn:
        conn.execution_options(**{WRITE_OPTION: True})
        # State left by a transaction opened some other way (engine.begin()) is not ours to run;
        # what it published waits in the outbox for the sweep.
        conn.info.pop(_TRANSACTION, None)
        try:
            with conn.begin():
                yield conn
        finally:
            # The DBAPI connection goes back to the pool: nothing of this transaction rides along.
            state = conn.info.pop(_TRANSACTION, {})
    for callback in state.get(_AFTER_COMMIT, []):
        callback()


def transaction_state(conn: Connection) -> dict[str, Any]:
    """Scratch space that lives as long as the current `writing` transaction."""
    state: dict[str, Any] = conn.info.setdefault(_TRANSACTION, {})
    return state


def after_commit(conn: Connection, callback: Callable[[], None]) -> None:
    """Run `callback` after this `writing` transaction commits (e.g. hand new events to the
    task queue). A rolled-back transaction drops it."""
    transaction_state(conn).setdefault(_AFTER_COMMIT, []).append(callback)


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A connection in a read-only transaction (one consistent snapshot)."""
    with engine.connect() as conn, conn.begin():
        yield conn
