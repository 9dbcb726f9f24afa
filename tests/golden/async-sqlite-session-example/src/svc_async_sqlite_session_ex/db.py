"""The database engine and the request's unit of work (`get_db`)."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import Engine, Executable, MetaData, RowMapping, event, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Session
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.util import await_only

from .config import Settings
from .pool import FirstComePool

Hook = Callable[[], Awaitable[object]]
# Key of a pooled connection's `info`: its transaction holds the write turn.
HOLDS_WRITE_TURN = "holds_write_turn"
# Keys of `Session.info` holding the unit of work's hooks, and the engine
# `read_row` uses outside a transaction.
BEFORE_COMMIT = "before_commit"
AFTER_ROLLBACK = "after_rollback"
READER = "reader"


class Base(DeclarativeBase):
    """Declarative base of every table; Alembic reads its metadata."""

    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


def create_db_engine(settings: Settings) -> AsyncEngine:
    """Create the engine (it connects lazily, on first use)."""
    engine = create_async_engine(
        settings.database_url,
        connect_args={"timeout": 15},
        # Errors (and so log lines) show statements without their values:
        # session ids, password hashes.
        hide_parameters=True,
        # A fixed pool without overflow: under load a request waits, in turn, for
        # a pooled connection instead of opening (and closing) extra ones.
        pool_size=settings.database_pool_size,
        max_overflow=0,
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
        # Not for `read_row`'s single reads in autocommit mode: they take no lock.
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


def create_sessionmaker(
    engine: AsyncEngine,
) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit, each knowing the
    engine for `read_row`."""
    reader = engine.execution_options(isolation_level="AUTOCOMMIT")
    return async_sessionmaker(engine, expire_on_commit=False, info={READER: reader})


def get_sessionmaker(request: Request) -> async_sessionmaker[AsyncSession]:
    """The application's sessionmaker, made at start-up (see `app.lifespan`)."""
    maker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    return maker


def before_commit(db: AsyncSession, hook: Hook, needed: Callable[[], bool] = lambda: True) -> None:
    """Run `hook` once the route has returned, just before the commit, inside
    the transaction, if `needed()` then says so (the session layer saves the
    session here, when it changed). `needed` runs in the event loop: a quick
    check, without I/O."""
    db.info.setdefault(BEFORE_COMMIT, []).append((hook, needed))


async def read_row(
    db: AsyncSession,
    statement: Executable,
    params: Mapping[str, Any],
) -> RowMapping | None:
    """The first row of a read-only `statement`, or None.

    Once the request's transaction has begun, the read joins it (it sees the
    request's own writes). Before that, it runs on its own in autocommit
    mode: one round trip instead of three (BEGIN, the read, COMMIT) for the
    reads that start most requests.
    """
    reader: AsyncEngine = db.info[READER]
    if db.in_transaction():
        result = await db.execute(statement, params)
        return result.mappings().first()
    # One hop into SQLAlchemy's greenlet for the connect, the read and the
    # release, where `async with reader.connect()` would make three.
    return await db.run_sync(_read_first, reader.sync_engine, statement, params)


def _read_first(
    _db: Session, engine: Engine, statement: Executable, params: Mapping[str, Any]
) -> RowMapping | None:
    with engine.connect() as connection:
        return connection.execute(statement, params).mappings().first()


async def database_ok(request: Request) -> bool:
    """Does the database answer `SELECT 1` (the readiness probe, `health.py`)?"""
    try:
        async with get_sessionmaker(request)() as db:
            await db.execute(text("SELECT 1"))
    except Exception:
        return False
    return True


async def _commit(db: AsyncSession, hooks: list[Hook]) -> None:
    """Run the before-commit hooks, then commit if a transaction began."""
    for hook in hooks:
        await hook()
    if db.in_transaction():
        await db.commit()


async def _roll_back(db: AsyncSession) -> None:
    """Roll back and release the connection, then run the undo hooks."""
    await db.close()
    for undo in reversed(db.info.pop(AFTER_ROLLBACK, [])):
        await undo()


async def get_db(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's unit of work: one transaction, committed on success and
    rolled back on any error, by this function only; others join it with
    `before_commit`.

    Used with `scope="function"`, so the commit happens before the response is
    sent: a failed commit becomes a 500, never a success the client trusts.
    The session begins its transaction (and takes a pooled connection) on
    first use, so a request that never touched the database costs no call.
    """
    db = get_sessionmaker(request)()
    try:
        yield db
        hooks = [hook for hook, needed in db.info.pop(BEFORE_COMMIT, []) if needed()]
        await _commit(db, hooks)
    except BaseException:
        # The request or its commit failed.
        await _roll_back(db)
        raise


DbSession = Annotated[AsyncSession, Depends(get_db, scope="function")]
