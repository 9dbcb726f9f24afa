"""The purge's turn on SQLite (see `store.purge_expired_sessions`)."""

import contextlib
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession


@contextlib.asynccontextmanager
async def purge_turn(engine: AsyncEngine) -> AsyncIterator[AsyncSession | None]:
    """A transaction for the purge of expired sessions. SQLite's write lock
    (every transaction begins IMMEDIATE) already lets one purge run at a
    time: another waits, then finds nothing to delete."""
    async with AsyncSession(engine) as db, db.begin():
        yield db
