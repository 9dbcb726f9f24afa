"""Sessions in a SQL table, written inside the request's own transaction:
the session change and the data change commit, or roll back, together.
A read before that transaction begins runs on its own (`db.read_row`).
"""

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import asdict
from functools import partial
from typing import Any, cast

from fastapi import FastAPI, Request
from sqlalchemy import (
    Column,
    CursorResult,
    Select,
    Table,
    bindparam,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from ..config import Settings
from ..db import DbSession, read_row
from ..models import RateLimit, SessionRecord, User
from .purge import purging
from .purge_lock import purge_turn
from .session import SessionState, apply_changes

_table = cast(Table, SessionRecord.__table__)
_limits = cast(Table, RateLimit.__table__)
_users = cast(Table, User.__table__)
_SESSION_FIELDS = [column.name for column in _table.c]
# A session read brings its user's row along, under these labels.
_USER_LABELS = {f"user__{column.name}": column.name for column in _users.c}


def _live_session(key: Column[str]) -> Select[Any]:
    # One read where `get_current_user` would make a second: see `loaded_user`.
    user = [_users.c[name].label(label) for label, name in _USER_LABELS.items()]
    return (
        select(_table, *user)
        .outerjoin(_users, _users.c.id == _table.c.user_id)
        .where(key == bindparam("key"), _table.c.expires_at > bindparam("now"))
    )


# Session reads run on every request that uses the session. Their statements
# are built once: building one (and its cache key) costs more CPU than
# executing it.
_BY_ID = _live_session(_table.c.id)


class SessionStore:
    def __init__(self, db: DbSession) -> None:
        self.db = db
        self._user: User | None = None

    async def _fetch(self, statement: Select[Any], key: str, now: float) -> SessionState | None:
        row = await read_row(self.db, statement, {"key": key, "now": now})
        if row is None:
            return None
        if row["user__id"] is not None:
            self._user = User(**{name: row[label] for label, name in _USER_LABELS.items()})
        return SessionState(**{name: row[name] for name in _SESSION_FIELDS})

    def loaded_user(self, user_id: int) -> User | None:
        """User `user_id` as read along with the session (`get`), or None when
        no such user was there. Like `auth.users.get_user`'s, it is a copy
        that the request's database session does not track."""
        user = self._user
        return user if user is not None and user.id == user_id else None

    async def get(self, session_id: str, now: float) -> SessionState | None:
        """The live session with this id, or None (unknown or expired)."""
        return await self._fetch(_BY_ID, session_id, now)

    async def add(self, state: SessionState) -> None:
        await self.db.execute(insert(_table).values(asdict(state)))

    async def update(
        self,
        session_id: str,
        fields: dict[str, Any],
        changes: dict[str, Any],
    ) -> None:
        """Set `fields` (columns), and merge `changes` (see `Session.changes`)
        onto the data as stored now, read under a lock held until the commit:
        a concurrent request's changes to other keys are kept, and a session
        deleted meanwhile (logged out) stays deleted. The lock is
        the database's write lock (each transaction begins IMMEDIATE)."""
        values = dict(fields)
        if changes:
            result = await self.db.execute(
                select(_table.c.data).where(_table.c.id == session_id).with_for_update()
            )
            data = result.scalar_one_or_none()
            if data is None:
                return
            values["data"] = apply_changes(data, changes)
        await self.db.execute(update(_table).where(_table.c.id == session_id).values(values))

    async def take(self, session_id: str, prefix: str) -> dict[str, Any]:
        """Remove the data keys starting with `prefix` from the session as
        stored now, and return them. The lock of that read (see `update`) holds
        until the commit, so of concurrent takes one gets the keys and the
        others find them gone."""
        result = await self.db.execute(
            select(_table.c.data).where(_table.c.id == session_id).with_for_update()
        )
        data = result.scalar_one_or_none() or {}
        taken = {key: value for key, value in data.items() if key.startswith(prefix)}
        if taken:
            rest = {key: value for key, value in data.items() if key not in taken}
            statement = update(_table).where(_table.c.id == session_id).values(data=rest)
            await self.db.execute(statement)
        return taken

    async def delete(self, session_id: str) -> None:
        await self.db.execute(delete(_table).where(_table.c.id == session_id))

    async def purge_expired(self, now: float) -> int:
        """Delete expired sessions, and rate-limit windows that ended; returns
        how many sessions went."""
        await self.db.execute(delete(_limits).where(_limits.c.resets_at <= now))
        result = await self.db.execute(delete(_table).where(_table.c.expires_at <= now))
        return cast(CursorResult[Any], result).rowcount


def request_store(request: Request, db: DbSession) -> SessionStore:
    """The request's one session store, made on first use: the session table,
    written through the request's transaction."""
    store: SessionStore | None = getattr(request.state, "session_store", None)
    if store is None:
        store = SessionStore(db)
        request.state.session_store = store
    return store


async def store_ok(_request: Request, database_up: bool) -> bool:
    """Sessions live in the database: usable when it is, as `health.py` just
    found (no second round trip)."""
    return database_up


async def purge_expired_sessions(engine: AsyncEngine) -> int | None:
    """Delete expired sessions; None when another process is purging."""
    async with purge_turn(engine) as db:
        return None if db is None else await SessionStore(db).purge_expired(time.time())


@contextlib.asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[None]:
    """Expired sessions are refused when read; this deletes their rows, in
    the background, every `SESSION_CLEANUP_INTERVAL` seconds."""
    settings: Settings = app.state.settings
    engine = app.state.engine
    purge = partial(purge_expired_sessions, engine)
    async with purging(purge, settings.session_cleanup_interval):
        yield


def add_store_error_handlers(app: FastAPI) -> None:
    """Nothing to add: the session table's errors are the database's
    (`db_errors.py`)."""
