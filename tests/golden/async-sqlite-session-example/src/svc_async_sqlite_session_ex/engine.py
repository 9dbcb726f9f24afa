"""The SQLite engine (one writer at a time, in turn), and how its failures read."""

import asyncio
from typing import Any

from sqlalchemy import event, make_url
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.util import await_only

from .config import Settings
from .errors import Outage
from .pool import FirstComePool

# Key of a pooled connection's `info`: its transaction holds the write turn.
HOLDS_WRITE_TURN = "holds_write_turn"


def create_db_engine(settings: Settings) -> AsyncEngine:
    """Create the engine (it connects lazily, on first use)."""
    engine = create_async_engine(
        settings.database_url,
        connect_args={"timeout": 15},
        # Errors (and so log lines) show statements without their values: no
        # secret (a session id, say) reaches a log.
        hide_parameters=True,
        # A fixed pool without overflow: under load a request waits for a
        # pooled connection instead of opening (and closing) extra ones.
        pool_size=settings.database_pool_size,
        max_overflow=0,
        # Waiting requests get connections first come, first served (`pool.py`).
        poolclass=FirstComePool,
    )
    # SQLite allows one writer at a time. A transaction that reads and then
    # writes would fail with "database is locked" when another writer got in
    # between, so every transaction takes the write lock up front
    # (BEGIN IMMEDIATE) and waits its turn instead.

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: object) -> None:
        dbapi_connection.isolation_level = None  # let SQLAlchemy emit BEGIN
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    # SQLite's own wait for that lock polls it, sleeping longer each time (up to
    # 100 ms): a writer that has waited long can lose the lock again and again
    # to newcomers. So the writers of this process first queue here, in turn.
    write_turn = asyncio.Lock()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # Not for `db.read_row`'s single reads in autocommit mode: they take no lock.
        if connection.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
            await_only(write_turn.acquire())
            connection.info[HOLDS_WRITE_TURN] = True
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    @event.listens_for(engine.sync_engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        # The connection is back in the pool: its transaction has ended, one way
        # or another (committed, rolled back, or the connection lost).
        if record.info.pop(HOLDS_WRITE_TURN, False):
            write_turn.release()

    return engine


def autocommit_reader(engine: AsyncEngine, _settings: Settings) -> AsyncEngine:
    """The engine for `db.read_row`'s reads outside a transaction."""
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def database_outage(settings: Settings) -> Outage:
    """The database's `Outage` (`db_errors.py`), named by its file."""
    url = make_url(settings.database_url)
    return Outage("Database", url.database or ":memory:")


def connection_lost(exc: DBAPIError) -> bool:
    """Is the database down, or did the request's connection die? SQLAlchemy
    then discards the pooled connections, so later requests reconnect."""
    return isinstance(exc, OperationalError) or exc.connection_invalidated
