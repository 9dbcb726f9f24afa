"""What logins keep in Redis beside the sessions, under the `REDIS_PREFIX`
namespace: every session of a user (`UserSessions`, the set at
`user:{<user id>}` that the store's writes keep), and the rate-limit
counters (`LoginCounters`):

  limit:<key>         a rate-limit counter (failed logins), expiring with its window
"""

from typing import Any, cast

from fastapi import Request

from ..config import get_settings
from ..db import DbSession
from .redis_client import RedisClient
from .session import SessionState
from .store import SessionStore, as_text, load_state, request_store

# The counter starts at 0 with the window as its TTL; INCR keeps the TTL.
_HIT = """
redis.call("SET", KEYS[1], 0, "EX", ARGV[1], "NX")
return {redis.call("INCR", KEYS[1]), redis.call("PTTL", KEYS[1])}
"""
# DECR unless the counter is gone (its window ended): a DECR alone would
# bring the key back, without a TTL.
_UNDO = """
local hits = tonumber(redis.call("GET", KEYS[1]))
if hits and hits > 0 then
    return redis.call("DECR", KEYS[1])
end
return 0
"""


class UserSessions:
    """Every session of one user (`contract.UserSessions`): the set at
    `user:{<user id>}`, which the store's writes keep. Deletes go through
    the store, so they are undone with its other writes."""

    def __init__(self, store: SessionStore) -> None:
        self.store = store

    def list_for_user(self, user_id: int, now: float) -> list[SessionState]:
        members = self.store.redis.smembers(self.store.user_key(user_id))
        ids = sorted(as_text(member) for member in members)
        if not ids:
            return []
        # Not MGET: a user's sessions lie in different Cluster slots.
        pipe = self.store.redis.pipeline(transaction=False)
        for session_id in ids:
            pipe.get(self.store.session_key(session_id))
        raws = pipe.execute()
        states = [load_state(raw, now) for raw in raws]
        gone = [session_id for session_id, raw in zip(ids, raws, strict=True) if raw is None]
        if gone:
            self.store.redis.srem(self.store.user_key(user_id), *gone)
        live = [self.store.remember(state) for state in states]
        return sorted((state for state in live if state is not None), key=lambda s: s.created_at)

    def delete_for_user(self, user_id: int) -> None:
        for state in self.list_for_user(user_id, 0):
            self.store.delete(state.id)
        self.store.redis.delete(self.store.user_key(user_id))


class LoginCounters:
    """Rate-limit counters at `limit:<key>` (`auth.limits.Counters`)."""

    def __init__(self, redis: RedisClient, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix

    def _limit_key(self, key: str) -> str:
        return f"{self.prefix}limit:{key}"

    def hit(self, key: str, window: int, now: float) -> tuple[int, float]:
        """Count one event under `key`; returns the count in its current window
        (this one included) and when the window ends.

        Not journaled: a failed login counts even if its request fails later.
        One script (atomic): of concurrent hits each sees its own count.
        """
        # One script on one key: atomic, and fine on a Cluster (redis.asyncio's
        # cluster client failed MULTI pipelines here).
        counted = cast(Any, self.redis).eval(_HIT, 1, self._limit_key(key), window)
        hits, ttl_ms = cast(list[int], counted)
        return int(hits), now + max(ttl_ms, 0) / 1000

    def give_back(self, key: str, now: float) -> None:
        """Take back one event under `key` (if its window is still running)."""
        cast(Any, self.redis).eval(_UNDO, 1, self._limit_key(key))

    def clear(self, key: str) -> None:
        self.redis.delete(self._limit_key(key))


def request_user_sessions(request: Request, db: DbSession) -> UserSessions:
    """The user-session index of this request, kept by its store."""
    return UserSessions(request_store(request, db))


def request_counters(request: Request, _db: DbSession) -> LoginCounters:
    """Rate-limit counters: written at once, never undone with the request."""
    settings = get_settings(request)
    return LoginCounters(request.app.state.redis, settings.redis_prefix)
