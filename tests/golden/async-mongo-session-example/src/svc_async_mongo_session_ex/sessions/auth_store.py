"""What logins keep beside the sessions, in MongoDB: every session of a user
(`UserSessions`, the `sessions` collection by its `user_id` index), and the
failed-login counters (`LoginCounters`).

`rate_limits` holds the counters: `{_id: key, hits, resets_at, expires}`,
removed by a TTL index once their window ends (`store.create_indexes`). They
are written at once, outside the unit of work: a failed request's attempt
counts.
"""

from datetime import UTC, datetime
from functools import partial
from typing import Any, cast

from fastapi import Request
from pymongo import ReturnDocument

from ..db import DbSession, UnitOfWork
from .session import SessionState
from .store import session_state


class UserSessions:
    """Every session of one user, by the `user_id` index (`contract.UserSessions`)."""

    def __init__(self, db: UnitOfWork) -> None:
        self.db = db
        self.sessions = db.database["sessions"]

    async def list_for_user(self, user_id: int, now: float) -> list[SessionState]:
        cursor = self.sessions.find(
            {"user_id": user_id, "expires_at": {"$gt": now}}, session=self.db.txn
        ).sort("created_at")
        documents = await cursor.to_list()
        return [state for document in documents if (state := session_state(document))]

    async def delete_for_user(self, user_id: int) -> None:
        cursor = self.sessions.find({"user_id": user_id}, session=self.db.txn)
        documents = await cursor.to_list()
        if documents:
            await self.sessions.delete_many({"user_id": user_id}, session=self.db.txn)
            self.db.on_rollback(partial(self.sessions.insert_many, documents))


class LoginCounters:
    """Rate-limit counters in `rate_limits` (`auth.limits.Counters`)."""

    def __init__(self, db: UnitOfWork) -> None:
        self.limits = db.database["rate_limits"]

    async def hit(self, key: str, window: int, now: float) -> tuple[int, float]:
        """Count one event under `key`; returns the count in its current window
        (this one included) and when the window ends.

        Outside the request's unit of work (no transaction, no inverse): a
        failed login counts even if its request fails later. One atomic
        `$inc`: of concurrent hits each sees its own count.
        """
        ended = {"_id": key, "resets_at": {"$lte": now}}
        await self.limits.delete_one(ended)
        resets_at = now + window
        expires = datetime.fromtimestamp(resets_at, UTC)  # a date, for the TTL index
        counter = await self.limits.find_one_and_update(
            {"_id": key},
            {
                "$inc": {"hits": 1},
                "$setOnInsert": {"resets_at": resets_at, "expires": expires},
            },
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        # With upsert and ReturnDocument.AFTER there always is a document.
        document = cast(dict[str, Any], counter)
        return document["hits"], document["resets_at"]

    async def give_back(self, key: str, now: float) -> None:
        """Take back one event under `key` (if its window is still running)."""
        await self.limits.update_one(
            {"_id": key, "resets_at": {"$gt": now}, "hits": {"$gt": 0}}, {"$inc": {"hits": -1}}
        )

    async def clear(self, key: str) -> None:
        await self.limits.delete_one({"_id": key})


def request_user_sessions(_request: Request, db: DbSession) -> UserSessions:
    """The user-session index of this request, written through its unit of work."""
    return UserSessions(db)


def request_counters(_request: Request, db: DbSession) -> LoginCounters:
    """This request's rate-limit counters (written at once, outside the unit of work)."""
    return LoginCounters(db)
