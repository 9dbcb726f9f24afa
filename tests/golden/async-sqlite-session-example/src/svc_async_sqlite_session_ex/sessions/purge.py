"""The purge of expired sessions: they are refused when read, and this
deletes their rows, every `SESSION_CLEANUP_INTERVAL` seconds."""

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from .sql_store import SessionStore

logger = logging.getLogger(__name__)


async def purge_expired_sessions(engine: AsyncEngine) -> int | None:
    """Delete expired sessions; None when another process is purging.

    SQLite's write lock (every transaction begins IMMEDIATE, `db.py`) already
    lets one purge run at a time: another waits, then finds nothing to delete.
    """
    async with AsyncSession(engine) as db, db.begin():
        return await SessionStore(db).purge_expired(time.time())


async def purge_expired_sessions_forever(engine: AsyncEngine, interval: float) -> None:
    """Purge every `interval` seconds, logging (not raising) a failure."""
    while True:
        await asyncio.sleep(interval)
        try:
            purged = await purge_expired_sessions(engine)
            if purged is not None:
                logger.info("purged %d expired sessions", purged)
        except Exception:
            logger.exception("purging expired sessions failed")


@contextlib.asynccontextmanager
async def purging_expired_sessions(engine: AsyncEngine, interval: float) -> AsyncIterator[None]:
    """Runs the purge in the background for as long as the context lasts."""
    purger = asyncio.create_task(purge_expired_sessions_forever(engine, interval))
    try:
        yield
    finally:
        purger.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await purger
