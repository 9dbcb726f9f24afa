"""The connection pool serves waiting requests in the order they came (`pool.py`)."""

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from svc_async_sqlite_session_ex.config import Settings
from svc_async_sqlite_session_ex.engine import create_db_engine

pytestmark = pytest.mark.anyio


def one_connection_engine(settings: Settings) -> AsyncEngine:
    return create_db_engine(settings.model_copy(update={"database_pool_size": 1}))


async def test_a_returned_connection_goes_to_the_request_waiting_longest(
    settings: Settings,
) -> None:
    """A request that comes when a connection is being returned queues behind
    the one already waiting, instead of taking it (asyncio.Queue would let it)."""
    engine = one_connection_engine(settings)
    served: list[str] = []

    async def use(name: str) -> None:
        async with engine.connect() as connection:
            served.append(name)
            await connection.execute(text("SELECT 1"))

    try:
        holder = await engine.connect()
        waiting = asyncio.create_task(use("waiting"))
        await asyncio.sleep(0.1)  # it is waiting for the pool's one connection

        async def come_as_it_is_returned() -> None:
            await holder.close()
            await use("newcomer")

        await asyncio.wait_for(asyncio.gather(waiting, come_as_it_is_returned()), 10)
    finally:
        await engine.dispose()
    assert served == ["waiting", "newcomer"]


async def test_a_waiter_that_gives_up_loses_no_connection(settings: Settings) -> None:
    """A request cancelled while it waits (its client went away) leaves the
    queue without taking the connection returned after."""
    engine = one_connection_engine(settings)
    try:
        holder = await engine.connect()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(engine.connect(), 0.2)
        await holder.close()
        # The pool's one connection is still there for the next request.
        connection = await asyncio.wait_for(engine.connect(), 10)
        assert (await connection.execute(text("SELECT 1"))).scalar() == 1
        await connection.close()
    finally:
        await engine.dispose()


async def test_sqlite_writers_take_the_write_lock_in_turn(settings: Settings) -> None:
    """Transactions, which all take SQLite's write lock, get it in the order
    they asked (SQLite's own polling would let a later one in first), and one
    that fails hands it on."""
    engine = create_db_engine(settings.model_copy(update={"database_pool_size": 5}))
    began: list[str] = []

    async def write(name: str) -> None:
        async with engine.begin() as connection:
            began.append(name)
            if name == "first":
                raise RuntimeError("the first writer fails")
            await connection.execute(text("SELECT 1"))

    try:
        holder = await engine.connect()
        await holder.begin()  # takes the write lock
        writers = []
        for name in ("first", "second", "third"):
            writers.append(asyncio.create_task(write(name)))
            await asyncio.sleep(0.1)
        assert began == []  # all three wait for the lock
        await holder.close()
        results = await asyncio.wait_for(asyncio.gather(*writers, return_exceptions=True), 10)
    finally:
        await engine.dispose()
    assert began == ["first", "second", "third"]
    assert isinstance(results[0], RuntimeError)
    assert results[1:] == [None, None]
