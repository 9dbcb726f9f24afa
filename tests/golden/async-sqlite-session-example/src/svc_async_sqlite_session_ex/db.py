"""The request's unit of work (`get_db`), and the sessionmaker it draws on.

The engine is `engine.py`'s, the one part that differs between databases.
"""

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from sqlalchemy import Engine, Executable, MetaData, RowMapping, event, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import DeclarativeBase, Session

from .config import Settings
from .engine import autocommit_reader, create_db_engine
from .errors import Outage

Hook = Callable[[], Awaitable[object]]
# Keys of `Session.info` holding the unit of work's hooks, and the engine
# `read_row` uses outside a transaction.
BEFORE_COMMIT = "before_commit"
AFTER_ROLLBACK = "after_rollback"
AFTER_COMMIT = "after_commit"
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


@contextlib.asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[None]:
    """The engine and its sessionmaker, for as long as the application runs."""
    settings: Settings = app.state.settings
    engine = create_db_engine(settings)
    app.state.engine = engine
    # A new connection: the database is reached (again), and its next
    # failure is a new outage, logged once (`db_errors.py`).
    outage: Outage = app.state.database_outage
    event.listen(engine.sync_engine, "connect", lambda *_: outage.reached())
    app.state.sessionmaker = create_sessionmaker(engine, settings)
    try:
        yield
    finally:
        await engine.dispose()


def create_sessionmaker(
    engine: AsyncEngine,
    settings: Settings,
) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded objects usable after commit, each knowing the
    engine for `read_row`."""
    reader = autocommit_reader(engine, settings)
    return async_sessionmaker(engine, expire_on_commit=False, info={READER: reader})


def get_sessionmaker(request: Request) -> async_sessionmaker[AsyncSession]:
    """The application's sessionmaker, made at start-up (`running`)."""
    maker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    return maker


def before_commit(db: AsyncSession, hook: Hook, needed: Callable[[], bool] = lambda: True) -> None:
    """Run `hook` once the route has returned, just before the commit, inside
    the transaction, if `needed()` then says so (the session layer saves the
    session here, when it changed). `needed` runs in the event loop: a quick
    check, without I/O."""
    db.info.setdefault(BEFORE_COMMIT, []).append((hook, needed))


def after_rollback(db: AsyncSession, hook: Hook) -> None:
    """Run `hook` when the request or its commit fails, once the transaction
    is rolled back: a store outside the database undoes its writes here."""
    db.info.setdefault(AFTER_ROLLBACK, []).append(hook)


def after_commit(db: AsyncSession, hook: Callable[[], object]) -> None:
    """Call `hook` (quick, no I/O: it runs in the event loop) once the request's
    transaction has committed: the mail sender is woken here."""
    db.info.setdefault(AFTER_COMMIT, []).append(hook)


class Refused(HTTPException):
    """An error answer after which the request's unit of work still commits,
    with its session changes: raised by a dependency that ends what it
    refuses (a session older than its user's credentials), before the
    route has written anything."""


async def read_row(
    db: AsyncSession,
    statement: Executable,
    params: Mapping[str, Any],
) -> RowMapping | None:
    """The first row of a read-only `statement`, or None.

    Once the request's transaction has begun, the read joins it (it sees the
    request's own writes). Before that, it runs on its own in autocommit
    mode where the engine allows it (`engine.autocommit_reader`): one round
    trip instead of three (BEGIN, the read, COMMIT) for the reads that start
    most requests.
    """
    reader: AsyncEngine | None = db.info[READER]
    if reader is None or db.in_transaction():
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
    `before_commit` and `after_rollback`.

    Used with `scope="function"`, so the commit happens before the response is
    sent: a failed commit becomes a 500, never a success the client trusts.
    The session begins its transaction (and takes a pooled connection) on
    first use, so a request that never touched the database costs no call.
    """
    db = get_sessionmaker(request)()
    refusal: Refused | None = None
    try:
        try:
            yield db
        except Refused as error:
            # Answered with an error, yet what the request did stays.
            refusal = error
        hooks = [hook for hook, needed in db.info.pop(BEFORE_COMMIT, []) if needed()]
        await _commit(db, hooks)
        for hook in db.info.pop(AFTER_COMMIT, []):
            hook()
    except BaseException:
        # The request or its commit failed.
        await _roll_back(db)
        raise
    if refusal is not None:
        raise refusal


DbSession = Annotated[AsyncSession, Depends(get_db, scope="function")]
