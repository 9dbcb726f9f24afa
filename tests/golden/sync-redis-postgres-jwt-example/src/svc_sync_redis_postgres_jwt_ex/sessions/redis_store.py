"""Sessions in Redis: one key per session, expired by Redis itself.

Keys, under the `REDIS_PREFIX` namespace:
  session:<id>      the session as JSON, with the session's expiry as its TTL
  handle:<handle>   the id of the session with that public handle (the `sid` claim)
  user:<user id>    the set of a user's session ids (pruned when listed)
  limit:<key>       a rate-limit counter (failed logins), expiring with its window

Redis is not part of the database transaction, so every write is journaled
with its inverse: `rollback()` puts the sessions back as they were loaded
when the database commit fails after the session was saved.

An update merges the request's changes onto the session as stored now, in a
WATCH/MULTI transaction retried when another request saved the session in
between: concurrent requests that change different keys keep every change.
"""

import json
from collections.abc import Callable
from dataclasses import asdict, replace
from typing import Any

from redis import Redis
from redis.client import Pipeline

from svc_sync_redis_postgres_jwt_ex.sessions.session import (
    DELETED,
    Increment,
    SessionState,
    apply_changes,
)

Undo = Callable[[], object]


def create_redis(url: str) -> Redis:
    """A client with a connection pool; it reconnects by itself after an outage."""
    return Redis.from_url(
        url,
        decode_responses=True,
        socket_connect_timeout=2,
        socket_timeout=5,
        health_check_interval=30,
    )


def _dump(state: SessionState) -> str:
    return json.dumps(asdict(state), separators=(",", ":"))


def _text(value: str | bytes) -> str:
    return value if isinstance(value, str) else value.decode()


def _load(raw: str | bytes | None, now: float) -> SessionState | None:
    if raw is None:
        return None
    state = SessionState(**json.loads(raw))
    return state if state.expires_at > now else None


def undo(previous: SessionState, changes: dict[str, Any]) -> dict[str, Any]:
    """The changes that undo `changes` on the session as it was loaded: an
    increment by the opposite increment (concurrent increments stay counted),
    any other change by the value as loaded."""
    return {
        key: Increment(-value.by)
        if isinstance(value, Increment)
        else previous.data.get(key, DELETED)
        for key, value in changes.items()
    }


class SessionStore:
    def __init__(self, redis: Redis, prefix: str, absolute_timeout: int) -> None:
        self.redis = redis
        self.prefix = prefix
        self.absolute_timeout = absolute_timeout
        # Sessions as read in this request, to restore them on rollback.
        self.loaded: dict[str, SessionState] = {}
        self.journal: list[Undo] = []

    def _key(self, session_id: str) -> str:
        return f"{self.prefix}session:{session_id}"

    def _user_key(self, user_id: int) -> str:
        return f"{self.prefix}user:{user_id}"

    def _remember(self, state: SessionState | None) -> SessionState | None:
        if state is not None:
            self.loaded[state.id] = replace(state, data=dict(state.data))
        return state

    def get(self, session_id: str, now: float) -> SessionState | None:
        """The live session with this id, or None: one round trip."""
        return self._remember(_load(self.redis.get(self._key(session_id)), now))

    def get_by_handle(self, handle: str, now: float) -> SessionState | None:
        """The live session with this public handle (the `sid` claim), or None."""
        session_id = self.redis.get(f"{self.prefix}handle:{handle}")
        return self.get(_text(session_id), now) if session_id else None

    def _queue_set(self, pipe: Pipeline, state: SessionState) -> None:
        expires_at_ms = int(state.expires_at * 1000)
        pipe.set(self._key(state.id), _dump(state), pxat=expires_at_ms)
        pipe.set(f"{self.prefix}handle:{state.handle}", state.id, pxat=expires_at_ms)

    def _put(self, state: SessionState) -> None:
        pipe = self.redis.pipeline(transaction=False)
        self._queue_set(pipe, state)
        if state.user_id is not None:
            pipe.sadd(self._user_key(state.user_id), state.id)
            pipe.expire(self._user_key(state.user_id), self.absolute_timeout)
        pipe.execute()

    def _restore(self, session_id: str) -> None:
        """Put back the session as it was loaded, or remove it if it was new."""
        previous = self.loaded.get(session_id)
        if previous is None:
            self.redis.delete(self._key(session_id))
        else:
            self._put(previous)

    def add(self, state: SessionState) -> None:
        self._put(state)
        self.journal.append(lambda: self._restore(state.id))

    def update(
        self,
        session_id: str,
        fields: dict[str, Any],
        changes: dict[str, Any],
    ) -> None:
        """Set `fields`, and merge `changes` (see `Session.changes`) onto the
        data as stored now. A session deleted meanwhile stays deleted."""
        self._merge(session_id, fields, changes)
        previous = self.loaded.get(session_id)
        if previous is not None:
            old_fields = {name: getattr(previous, name) for name in fields}
            reverse = undo(previous, changes)
            self.journal.append(lambda: self._merge(session_id, old_fields, reverse))

    def _merge(
        self,
        session_id: str,
        fields: dict[str, Any],
        changes: dict[str, Any],
        take: str | None = None,
    ) -> dict[str, Any]:
        """Merge `changes` onto the session as stored now, and remove (and
        return) its data keys starting with `take`, atomically."""
        key = self._key(session_id)
        taken: dict[str, Any] = {}

        def merge(pipe: Pipeline) -> None:
            taken.clear()
            state = _load(pipe.get(key), 0)
            if state is not None:
                pipe.multi()
                data = apply_changes(state.data, changes)
                if take is not None:
                    taken.update((k, v) for k, v in data.items() if k.startswith(take))
                    data = {k: v for k, v in data.items() if k not in taken}
                self._queue_set(pipe, replace(state, **fields, data=data))

        # WATCH the key, merge, MULTI/EXEC; run again if the key changed meanwhile.
        self.redis.transaction(merge, key)
        return taken

    def take(self, session_id: str, prefix: str) -> dict[str, Any]:
        """Remove the data keys starting with `prefix` from the session as
        stored now, and return them: of concurrent takes, one gets them."""
        taken = self._merge(session_id, {}, {}, take=prefix)
        if taken:
            # Undone as increments where they are numbers, so that what
            # concurrent requests added meanwhile stays.
            restore = {
                key: Increment(value) if isinstance(value, int) else value
                for key, value in taken.items()
            }
            self.journal.append(lambda: self._merge(session_id, {}, restore))
        return taken

    def delete(self, session_id: str) -> None:
        self.redis.delete(self._key(session_id))
        self.journal.append(lambda: self._restore(session_id))

    def list_for_user(self, user_id: int, now: float) -> list[SessionState]:
        members = self.redis.smembers(self._user_key(user_id))
        ids = sorted(_text(member) for member in members)
        if not ids:
            return []
        raws = self.redis.mget([self._key(session_id) for session_id in ids])
        states = [_load(raw, now) for raw in raws]
        gone = [session_id for session_id, raw in zip(ids, raws, strict=True) if raw is None]
        if gone:
            self.redis.srem(self._user_key(user_id), *gone)
        live = [self._remember(state) for state in states]
        return sorted((state for state in live if state is not None), key=lambda s: s.created_at)

    def delete_for_user(self, user_id: int) -> None:
        for state in self.list_for_user(user_id, 0):
            self.delete(state.id)
        self.redis.delete(self._user_key(user_id))

    def _limit_key(self, key: str) -> str:
        return f"{self.prefix}limit:{key}"

    def hit(self, key: str, window: int, now: float) -> int:
        """Count one event under `key`; returns the count in its current window.

        Not journaled: a failed login counts even if its request fails later.
        """
        pipe = self.redis.pipeline(transaction=True)
        # The counter starts at 0 with the window as its TTL; INCR keeps the TTL.
        pipe.set(self._limit_key(key), 0, ex=window, nx=True)
        pipe.incr(self._limit_key(key))
        _, hits = pipe.execute()
        return int(hits)

    def count(self, key: str, now: float) -> tuple[int, float]:
        """The events counted under `key` in its current window, and when it ends."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(self._limit_key(key))
        pipe.pttl(self._limit_key(key))
        hits, ttl_ms = pipe.execute()
        if hits is None or ttl_ms < 0:
            return 0, now
        return int(hits), now + ttl_ms / 1000

    def clear(self, key: str) -> None:
        self.redis.delete(self._limit_key(key))

    def rollback(self) -> None:
        """Undo this request's writes, newest first."""
        while self.journal:
            self.journal.pop()()
