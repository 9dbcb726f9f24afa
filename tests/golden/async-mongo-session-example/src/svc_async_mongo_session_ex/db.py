"""The MongoDB client and the request's unit of work (`get_db`)."""

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, cast

from fastapi import Depends, FastAPI, HTTPException, Request
from pymongo import AsyncMongoClient, ReturnDocument, monitoring
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from .config import Settings
from .errors import Outage
from .models import create_indexes

Document = dict[str, Any]
Undo = Callable[[], Awaitable[object]]


@dataclass
class Mongo:
    client: AsyncMongoClient[Document]
    database: AsyncDatabase[Document]
    # Multi-document transactions need a replica set or a sharded cluster.
    transactions: bool


class Heartbeats(monitoring.ServerHeartbeatListener):
    """pymongo checks each server every few seconds: one that answers is
    reached, and its next failure is a new outage, logged once (`db_errors.py`)."""

    def __init__(self, outage: Outage) -> None:
        self.outage = outage

    def started(self, _event: monitoring.ServerHeartbeatStartedEvent) -> None:
        pass

    def succeeded(self, _event: monitoring.ServerHeartbeatSucceededEvent) -> None:
        self.outage.reached()

    def failed(self, _event: monitoring.ServerHeartbeatFailedEvent) -> None:
        pass


async def connect(settings: Settings, outage: Outage) -> Mongo:
    """Connect, learn whether the server has transactions, create the indexes."""
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        settings.database_url,
        # Fail fast while the server is down (the default waits 30 s).
        serverSelectionTimeoutMS=2000,
        event_listeners=[Heartbeats(outage)],
    )
    database = client.get_default_database()
    hello = await client.admin.command("hello")
    await create_indexes(database)
    return Mongo(client, database, "setName" in hello or hello.get("msg") == "isdbgrid")


class UnitOfWork:
    """One request's writes, kept or undone together.

    Where the server has transactions, they run in one multi-document
    transaction: pass `session=db.txn` to every operation. A standalone
    server has none: each write applies at once and registers its inverse
    with `on_rollback()`; the inverses run newest first if the request fails.
    """

    def __init__(self, database: AsyncDatabase[Document], txn: AsyncClientSession | None) -> None:
        self.database = database
        self.txn = txn
        self._undo: list[Undo] = []
        self.hooks_before_commit: list[tuple[Undo, Callable[[], bool]]] = []
        self.hooks_after_rollback: list[Undo] = []
        self.hooks_after_commit: list[Callable[[], object]] = []
        # The collections, each named once: a misspelt one is an error, not a new collection.
        self.counters = database["counters"]
        self.users = database["users"]
        self.outbox = database["outbox"]
        self.account_tokens = database["account_tokens"]
        self.products = database["products"]
        self.orders = database["orders"]

    def on_rollback(self, undo: Undo) -> None:
        """Register the inverse of a write (needed only without a transaction)."""
        if self.txn is None:
            self._undo.append(undo)

    async def commit(self) -> None:
        while self.hooks_before_commit:
            hook, needed = self.hooks_before_commit.pop(0)
            if needed():
                await hook()
        if self.txn is not None and self.txn.in_transaction:
            await self.txn.commit_transaction()
        self._undo.clear()
        while self.hooks_after_commit:
            self.hooks_after_commit.pop(0)()

    async def rollback(self) -> None:
        if self.txn is not None and self.txn.in_transaction:
            await self.txn.abort_transaction()
        while self._undo:
            await self._undo.pop()()
        while self.hooks_after_rollback:
            await self.hooks_after_rollback.pop()()


def before_commit(db: UnitOfWork, hook: Undo, needed: Callable[[], bool] = lambda: True) -> None:
    """Run `hook` once the route has returned, just before the commit, inside
    the unit of work, if `needed()` then says so (the session layer saves the
    session here, when it changed)."""
    db.hooks_before_commit.append((hook, needed))


def after_rollback(db: UnitOfWork, hook: Undo) -> None:
    """Run `hook` when the request or its commit fails, once the unit of work
    is undone, with or without a transaction: a store outside the database
    undoes its writes here."""
    db.hooks_after_rollback.append(hook)


def after_commit(db: UnitOfWork, hook: Callable[[], object]) -> None:
    """Call `hook` (quick, no I/O) once the unit of work has committed: the
    mail sender is woken here."""
    db.hooks_after_commit.append(hook)


class Refused(HTTPException):
    """An error answer after which the request's unit of work still commits,
    with its session changes: raised by a dependency that ends what it
    refuses (a session older than its user's credentials), before the
    route has written anything."""


async def next_id(db: UnitOfWork, name: str) -> int:
    """The next integer id for a collection, from a counter document.

    Like a SQL sequence, the counter is outside the transaction: an id
    taken by a request that fails is skipped, never handed out twice.
    """
    counter = await db.counters.find_one_and_update(
        {"_id": name}, {"$inc": {"value": 1}}, upsert=True, return_document=ReturnDocument.AFTER
    )
    # With upsert and ReturnDocument.AFTER there always is a document.
    value: int = cast(Document, counter)["value"]
    return value


def get_mongo(request: Request) -> Mongo:
    """The application's client, made at start-up (`running`)."""
    mongo: Mongo = request.app.state.mongo
    return mongo


async def database_ok(request: Request) -> bool:
    """Does the server answer a ping (the readiness probe, `health.py`)?"""
    try:
        await get_mongo(request).client.admin.command("ping")
    except PyMongoError:
        return False
    return True


async def get_db(request: Request) -> AsyncIterator[UnitOfWork]:
    """One unit of work per request: committed on success and undone on any
    error, by this function only; others join it with `before_commit` and
    `after_rollback`.

    Used with `scope="function"`, so the commit happens before the response is
    sent: a failed commit becomes a 500, never a success the client trusts.
    """
    mongo = get_mongo(request)
    async with contextlib.AsyncExitStack() as stack:
        txn = None
        if mongo.transactions:
            txn = await stack.enter_async_context(mongo.client.start_session())
            await txn.start_transaction()
        db = UnitOfWork(mongo.database, txn)
        refusal: Refused | None = None
        try:
            try:
                yield db
            except Refused as error:
                # Answered with an error, yet what the request did stays.
                refusal = error
            await db.commit()
        except BaseException:
            await db.rollback()
            raise
        if refusal is not None:
            raise refusal


DbSession = Annotated[UnitOfWork, Depends(get_db, scope="function")]


@contextlib.asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[None]:
    """The client, for as long as the application runs."""
    mongo = await connect(app.state.settings, app.state.database_outage)
    app.state.mongo = mongo
    try:
        yield
    finally:
        await mongo.client.close()
