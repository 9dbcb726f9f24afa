"""Sessions in Redis: one key per session, expired by Redis itself.

Keys, under the `REDIS_PREFIX` namespace:
  session:<id>      the session as JSON, with the session's expiry as its TTL

Redis is not part of the database transaction, so every write is journaled
with its inverse: `rollback()` puts the sessions back as they were loaded
when the database commit fails after the session was saved.

An update merges the request's changes onto the session as stored now, in a
WATCH/MULTI transaction retried when another request saved the session in
between: concurrent requests that change different keys keep every change.
"""

import json
from collections.abc import Callable, Coroutine
from dataclasses import asdict, replace
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from svc_async_redis_mongo_none_noex.sessions.session import (
    DELETED,
    Increment,
    SessionState,
    apply_changes,
)

Undo = Callable[[], Coroutine[Any, Any, object]]


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

    def _remember(self, state: SessionState | None) -> SessionState | None:
        if state is not None:
            self.loaded[state.id] = replace(state, data=dict(state.data))
        return state

    async def get(self, session_id: str, now: float) -> SessionState | None:
        """The live session with this id, or None: one round trip."""
        return self._remember(_load(await self.redis.get(self._key(session_id)), now))

    def _queue_set(self, pipe: Pipeline, state: SessionState) -> None:
        expires_at_ms = int(state.expires_at * 1000)
        pipe.set(self._key(state.id), _dump(state), pxat=expires_at_ms)

    async def _put(self, state: SessionState) -> None:
        pipe = self.redis.pipeline(transaction=False)
        self._queue_set(pipe, state)
        await pipe.execute()

    async def _restore(self, session_id: str) -> None:
        """Put back the session as it was loaded, or remove it if it was new."""
        previous = self.loaded.get(session_id)
        if previous is None:
            await self.redis.delete(self._key(session_id))
        else:
            await self._put(previous)

    async def add(self, state: SessionState) -> None:
        await self._put(state)
        self.journal.append(lambda: self._restore(state.id))

    async def update(
        self,
        session_id: str,
        fields: dict[str, Any],
        changes: dict[str, Any],
    ) -> None:
        """Set `fields`, and merge `changes` (see `Session.changes`) onto the
        data as stored now. A session deleted meanwhile stays deleted."""
        await self._merge(session_id, fields, changes)
        previous = self.loaded.get(session_id)
        if previous is not None:
            old_fields = {name: getattr(previous, name) for name in fields}
            reverse = undo(previous, changes)
            self.journal.append(lambda: self._merge(session_id, old_fields, reverse))

    async def _merge(
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

        async def merge(pipe: Pipeline) -> None:
            taken.clear()
            state = _load(await pipe.get(key), 0)
            if state is not None:
                cast(Any, pipe).multi()  # untyped in redis.asyncio
                data = apply_changes(state.data, changes)
                if take is not None:
                    taken.update((k, v) for k, v in data.items() if k.startswith(take))
                    data = {k: v for k, v in data.items() if k not in taken}
                self._queue_set(pipe, replace(state, **fields, data=data))

        # WATCH the key, merge, MULTI/EXEC; run again if the key changed meanwhile.
        await self.redis.transaction(merge, key)
        return taken

    async def take(self, session_id: str, prefix: str) -> dict[str, Any]:
        """Remove the data keys starting with `prefix` from the session as
        stored now, and return them: of concurrent takes, one gets them."""
        taken = await self._merge(session_id, {}, {}, take=prefix)
        if taken:
            # Undone as increments where they are numbers, so that what
            # concurrent requests added meanwhile stays.
            restore = {
                key: Increment(value) if isinstance(value, int) else value
                for key, value in taken.items()
            }
            self.journal.append(lambda: self._merge(session_id, {}, restore))
        return taken

    async def delete(self, session_id: str) -> None:
        await self.redis.delete(self._key(session_id))
        self.journal.append(lambda: self._restore(session_id))

    async def rollback(self) -> None:
        """Undo this request's writes, newest first."""
        while self.journal:
            await self.journal.pop()()
