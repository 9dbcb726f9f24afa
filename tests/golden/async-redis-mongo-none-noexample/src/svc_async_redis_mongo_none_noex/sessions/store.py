"""Sessions in Redis: one key per session, expired by Redis itself.

Keys, under the `REDIS_PREFIX` namespace:
  session:{<id>}      the session as JSON, with the session's expiry as its TTL

The braces are Redis Cluster hash tags: on a cluster, the slot of a key is
the hash of its tag alone. Every transaction and WATCH here involves one key
only.

The same code runs on one server, a Sentinel-managed master or a Cluster:
`create_redis` picks the client from `REDIS_URL`.

Redis is not part of the database transaction, so every write is journaled
with its inverse: `rollback()` puts the sessions back as they were loaded
when the database commit fails after the session was saved.

An update merges the request's changes onto the session as stored now, in a
WATCH/MULTI transaction retried when another request saved the session in
between: concurrent requests that change different keys keep every change.
"""

import contextlib
import json
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import asdict, replace
from typing import Any, cast

from fastapi import FastAPI, Request
from redis.exceptions import RedisClusterException, RedisError

from ..config import Settings, get_settings
from ..db import DbSession, after_rollback
from ..errors import Outage
from .redis_client import AnyPipeline, RedisClient, create_redis, is_cluster
from .redis_errors import add_redis_error_handlers
from .session import (
    DELETED,
    Increment,
    SessionState,
    apply_changes,
)

# SET the session only if it is still stored as this request read it: the
# save of a session that no other request wrote meanwhile is one round trip.
_SWAP = """
if redis.call("GET", KEYS[1]) == ARGV[1] then
    redis.call("SET", KEYS[1], ARGV[2], "PXAT", ARGV[3])
    return 1
end
return 0
"""

Undo = Callable[[], Coroutine[Any, Any, object]]


def hash_tag(value: object) -> str:
    """`value` in braces: a Redis Cluster slots a key by the hash of that part alone."""
    return "{" + str(value) + "}"


def _dump(state: SessionState) -> str:
    return json.dumps(asdict(state), separators=(",", ":"))


def load_state(raw: str | bytes | None, now: float) -> SessionState | None:
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
    def __init__(
        self, redis: RedisClient, prefix: str, absolute_timeout: int, outage: Outage
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.absolute_timeout = absolute_timeout
        # Told when Redis answers: its next failure is a new outage, logged once.
        self.outage = outage
        # Sessions as read in this request, to restore them on rollback, and
        # as stored then, to save them with a compare-and-set.
        self.loaded: dict[str, SessionState] = {}
        self.stored: dict[str, str | bytes] = {}
        self.journal: list[Undo] = []

    def session_key(self, session_id: str) -> str:
        return f"{self.prefix}session:{hash_tag(session_id)}"

    def remember(self, state: SessionState | None) -> SessionState | None:
        if state is not None:
            self.loaded[state.id] = replace(state, data=dict(state.data))
        return state

    async def get(self, session_id: str, now: float) -> SessionState | None:
        """The live session with this id, or None: one round trip."""
        raw = await self.redis.get(self.session_key(session_id))
        self.outage.reached()
        state = self.remember(load_state(raw, now))
        if state is not None and raw is not None:
            self.stored[session_id] = raw
        return state

    def _queue_set(self, pipe: AnyPipeline, state: SessionState) -> None:
        pipe.set(self.session_key(state.id), _dump(state), pxat=int(state.expires_at * 1000))

    async def _put(self, state: SessionState) -> None:
        pipe = self.redis.pipeline(transaction=False)
        self._queue_set(pipe, state)
        await pipe.execute()

    async def _restore(self, session_id: str) -> None:
        """Put back the session as it was loaded, or remove it if it was new."""
        previous = self.loaded.get(session_id)
        if previous is None:
            await self.redis.delete(self.session_key(session_id))
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
        if not await self._swap(session_id, fields, changes):
            await self._merge(session_id, fields, changes)
        previous = self.loaded.get(session_id)
        if previous is not None:
            old_fields = {name: getattr(previous, name) for name in fields}
            reverse = undo(previous, changes)
            self.journal.append(lambda: self._merge(session_id, old_fields, reverse))

    async def _swap(self, session_id: str, fields: dict[str, Any], changes: dict[str, Any]) -> bool:
        """Save the change onto the session as this request read it, if it is
        still stored so (one round trip); False if not: another request saved
        or deleted it meanwhile, or this one has not read it."""
        previous = self.loaded.get(session_id)
        raw = self.stored.pop(session_id, None)
        if previous is None or raw is None:
            return False
        state = replace(previous, **fields, data=apply_changes(previous.data, changes))
        key, pxat = self.session_key(session_id), int(state.expires_at * 1000)
        swapped = await cast(Any, self.redis).eval(_SWAP, 1, key, raw, _dump(state), pxat)
        return bool(swapped)

    async def _merge(
        self,
        session_id: str,
        fields: dict[str, Any],
        changes: dict[str, Any],
        take: str | None = None,
    ) -> dict[str, Any]:
        """Merge `changes` onto the session as stored now, and remove (and
        return) its data keys starting with `take`, atomically."""
        taken: dict[str, Any] = {}

        def merge(state: SessionState | None) -> SessionState | None:
            taken.clear()
            if state is None:
                return None
            data = apply_changes(state.data, changes)
            if take is not None:
                taken.update((k, v) for k, v in data.items() if k.startswith(take))
                data = {k: v for k, v in data.items() if k not in taken}
            return replace(state, **fields, data=data)

        await self._transaction(session_id, merge)
        return taken

    async def _transaction(
        self, session_id: str, change: Callable[[SessionState | None], SessionState | None]
    ) -> None:
        """WATCH the session's key and read the session (None if gone), then
        MULTI/EXEC the SET of `change(session)` unless that is None; run again
        if the key changed meanwhile. `change` runs before MULTI: a
        `LimitExceeded` it raises leaves nothing queued."""
        key = self.session_key(session_id)

        async def transaction(pipe: AnyPipeline) -> None:
            state = change(load_state(await pipe.get(key), 0))
            if state is not None:
                cast(Any, pipe).multi()  # untyped in redis.asyncio
                self._queue_set(pipe, state)

        # (redis.asyncio.cluster types `transaction`'s callable as a coroutine.)
        await cast(Any, self.redis).transaction(transaction, key)

    async def delete(self, session_id: str) -> None:
        await self.redis.delete(self.session_key(session_id))
        self.journal.append(lambda: self._restore(session_id))

    async def rollback(self) -> None:
        """Undo this request's writes, newest first."""
        while self.journal:
            await self.journal.pop()()


def request_store(request: Request, db: DbSession) -> SessionStore:
    """The request's one session store, made on first use. If the request
    fails, its session writes are undone after the database rollback."""
    store: SessionStore | None = getattr(request.state, "session_store", None)
    if store is None:
        settings = get_settings(request)
        redis: RedisClient = request.app.state.redis
        store = SessionStore(
            redis,
            settings.redis_prefix,
            settings.session_absolute_timeout,
            request.app.state.session_store_outage,
        )
        after_rollback(db, store.rollback)
        request.state.session_store = store
    return store


async def store_ok(request: Request, _database_up: bool) -> bool:
    """Can requests use Redis (the readiness probe, `health.py`), whatever the
    data database's state (`_database_up`)? A server or
    a Sentinel-managed master: does it answer. A Cluster: is its state ok,
    which a PING to one live node would not tell (a master down fails every
    request on its slots until a replica takes over)."""
    redis: RedisClient = request.app.state.redis
    try:
        if is_cluster(redis):
            info = await redis.cluster_info()
            if info.get("cluster_state") != "ok":
                return False
        else:
            await redis.ping()
    except (RedisError, RedisClusterException):  # the latter: a Cluster out of reach
        return False
    outage: Outage = request.app.state.session_store_outage
    outage.reached()
    return True


@contextlib.asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[None]:
    """The Redis client, for as long as the application runs. Sessions
    expire in Redis by themselves: nothing to purge."""
    settings: Settings = app.state.settings
    redis = create_redis(settings.redis_url)
    app.state.redis = redis
    try:
        yield
    finally:
        await redis.aclose()


def add_store_error_handlers(app: FastAPI) -> None:
    """A request that finds Redis unreachable gets 503 (`redis_errors.py`)."""
    add_redis_error_handlers(app)
