"""Sessions in the MongoDB collection `sessions`, expired by a TTL index.

A document holds the fields of `SessionState`, with the id as `_id`, and
`expires`, the expiry as a date for the TTL index (MongoDB deletes expired
documents about once a minute; reads check `expires_at`, so an expired
session is never used in between).

An update sets only the data keys the request changed (`data.<key>`), in
one atomic update: concurrent requests that change other keys keep their
changes. So session keys must be valid MongoDB field names (no `.`, no
leading `$`).

Writes go through the request's unit of work: inside its transaction where
the server has transactions, and otherwise each with an inverse that puts
the session back as it was loaded if the request fails.
"""

import contextlib
from collections.abc import AsyncIterator
from dataclasses import asdict
from datetime import UTC, datetime
from functools import partial
from typing import Any

from fastapi import FastAPI, Request
from pymongo import ASCENDING, IndexModel

from ..db import DbSession, Mongo, UnitOfWork
from .session import DELETED, Increment, LimitExceeded, SessionState


def session_document(state: SessionState) -> dict[str, Any]:
    document = asdict(state)
    document["_id"] = document.pop("id")
    document["expires"] = _date(state.expires_at)
    return document


def session_state(document: dict[str, Any] | None) -> SessionState | None:
    if document is None:
        return None
    del document["expires"]
    return SessionState(id=document.pop("_id"), **document)


def _date(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


class SessionStore:
    def __init__(self, db: UnitOfWork) -> None:
        self.db = db
        self.sessions = db.database["sessions"]

    async def get(self, session_id: str, now: float) -> SessionState | None:
        """The live session with this id, or None (unknown or expired)."""
        return session_state(
            await self.sessions.find_one(
                {"_id": session_id, "expires_at": {"$gt": now}}, session=self.db.txn
            )
        )

    async def add(self, state: SessionState) -> None:
        await self.sessions.insert_one(session_document(state), session=self.db.txn)
        self.db.on_rollback(partial(self.sessions.delete_one, {"_id": state.id}))

    async def update(
        self,
        session_id: str,
        fields: dict[str, Any],
        changes: dict[str, Any],
    ) -> None:
        """Set `fields`, and the data keys in `changes` (see `Session.changes`),
        in one atomic update: a concurrent request's changes to other keys are
        kept, and a session deleted meanwhile (logged out) stays deleted."""
        if any("." in key or key.startswith("$") for key in changes):
            msg = "MongoDB session keys may not contain '.' or start with '$'"
            raise ValueError(msg)
        values = dict(fields)
        if "expires_at" in fields:
            values["expires"] = _date(fields["expires_at"])
        update: dict[str, Any] = {"$set": values}
        query: dict[str, Any] = {"_id": session_id}
        limits: list[int] = []
        for key, value in changes.items():
            if value is DELETED:
                update.setdefault("$unset", {})[f"data.{key}"] = ""
            elif isinstance(value, Increment):
                update.setdefault("$inc", {})[f"data.{key}"] = value.by
                if value.limit is not None:
                    # Applied only while the sum stays within the limit.
                    query[f"data.{key}"] = {"$not": {"$gt": value.limit - value.by}}
                    limits.append(value.limit)
            else:
                values[f"data.{key}"] = value
        previous = await self.sessions.find_one_and_update(query, update, session=self.db.txn)
        if previous is not None:
            self.db.on_rollback(partial(self.sessions.replace_one, {"_id": session_id}, previous))
        elif limits and await self.sessions.find_one({"_id": session_id}, session=self.db.txn):
            # Not applied, yet the session is there: a limit would be passed.
            raise LimitExceeded(min(limits))

    async def take(self, session_id: str, prefix: str) -> dict[str, Any]:
        """Remove the data keys starting with `prefix` from the session as
        stored now, and return them: of concurrent takes, one gets them (the
        update applies only while the keys hold the values read)."""
        while True:
            query = {"_id": session_id}
            document = await self.sessions.find_one(query, {"data": 1}, session=self.db.txn)
            data = document["data"] if document is not None else {}
            taken = {key: value for key, value in data.items() if key.startswith(prefix)}
            if not taken:
                return {}
            unchanged = {f"data.{key}": value for key, value in taken.items()}
            removed = await self.sessions.update_one(
                query | unchanged,
                {"$unset": dict.fromkeys(unchanged, "")},
                session=self.db.txn,
            )
            if removed.modified_count == 1:
                # Numbers come back as increments: what others added meanwhile stays.
                restore: dict[str, Any] = {}
                for key, value in taken.items():
                    operator = "$inc" if isinstance(value, int) else "$set"
                    restore.setdefault(operator, {})[f"data.{key}"] = value
                self.db.on_rollback(partial(self.sessions.update_one, {"_id": session_id}, restore))
                return taken

    async def delete(self, session_id: str) -> None:
        previous = await self.sessions.find_one_and_delete({"_id": session_id}, session=self.db.txn)
        if previous is not None:
            self.db.on_rollback(partial(self.sessions.insert_one, previous))


async def create_indexes(mongo: Mongo) -> None:
    """Create the indexes of the session collections (a no-op when they exist)."""
    database = mongo.database
    await database.sessions.create_indexes(
        [
            IndexModel([("handle", ASCENDING)], unique=True),
            # MongoDB deletes a session about a minute after `expires`.
            IndexModel([("expires", ASCENDING)], expireAfterSeconds=0),
        ]
    )
    # A user's sessions, listed and ended together (`auth_store.py`).
    await database.sessions.create_index([("user_id", ASCENDING)])
    # The rate-limit counters (`auth_store.py`): gone once their window ends.
    await database.rate_limits.create_index([("expires", ASCENDING)], expireAfterSeconds=0)


def request_store(request: Request, db: DbSession) -> SessionStore:
    """The request's one session store, made on first use: the `sessions`
    collection, written through the request's unit of work."""
    store: SessionStore | None = getattr(request.state, "session_store", None)
    if store is None:
        store = SessionStore(db)
        request.state.session_store = store
    return store


async def store_ok(_request: Request, database_up: bool) -> bool:
    """Sessions live in the database: usable when it is, as `health.py` just
    found (no second round trip)."""
    return database_up


@contextlib.asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[None]:
    """The session collections' indexes, made at start-up. Sessions expire
    by the TTL index on `expires`: nothing to purge."""
    mongo: Mongo = app.state.mongo
    await create_indexes(mongo)
    yield


def add_store_error_handlers(app: FastAPI) -> None:
    """Nothing to add: the session collection's errors are the database's
    (`db_errors.py`)."""
