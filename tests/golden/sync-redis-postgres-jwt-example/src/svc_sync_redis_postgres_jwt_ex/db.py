"""The database engine and the request's unit of work (`get_db`)."""

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import Engine, MetaData, create_engine
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

from svc_sync_redis_postgres_jwt_ex.config import Settings


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


def create_db_engine(settings: Settings) -> Engine:
    """Create the engine (it connects lazily, on first use)."""
    # A fixed pool without overflow: under load a request waits for a pooled
    # connection instead of opening (and closing) extra ones. Connections are
    # not pinged before each use (a round trip per request): one the server
    # dropped fails a single request, and the pool then replaces them all.
    return create_engine(
        settings.database_url,
        pool_size=settings.database_pool_size,
        max_overflow=0,
        pool_recycle=3600,
    )


def create_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


def get_sessionmaker(request: Request) -> sessionmaker[Session]:
    """The application's sessionmaker, made at start-up (see `main.lifespan`)."""
    maker: sessionmaker[Session] = request.app.state.sessionmaker
    return maker


async def reserve_connection(request: Request) -> AsyncIterator[None]:
    """Wait for one of the pool's connections here, in the event loop.

    Sync routes and dependencies run in a bounded pool of worker threads. A
    request that waited for a connection inside one would hold that thread:
    with every thread so held, a request that owns a connection (and perhaps
    a row lock the others wait for) could never get the thread it needs to
    finish, and the service would hang. So requests queue here, at most
    `DATABASE_POOL_SIZE` get past, and there are more worker threads than
    that (see `app.lifespan`).
    """
    slots: asyncio.Semaphore = request.app.state.connection_slots
    async with slots:
        yield


ConnectionSlot = Annotated[None, Depends(reserve_connection, scope="function")]


def get_db(request: Request, _slot: ConnectionSlot) -> Iterator[Session]:
    """One transaction per request: commit on success, roll back on any error.

    Used with `scope="function"`, so the commit happens before the response is
    sent: a failed commit becomes a 500, never a success the client trusts.
    The session begins its transaction (and takes a pooled connection) on
    first use, so a request that never touched the database costs no call.
    """
    db = get_sessionmaker(request)()
    try:
        yield db
        if db.in_transaction():
            db.commit()
    finally:
        if db.in_transaction():
            # The request or its commit failed: roll back, release the connection.
            db.close()


DbSession = Annotated[Session, Depends(get_db, scope="function")]
