"""The purge of expired sessions, in the background: they are refused when
read, and their rows are deleted every `SESSION_CLEANUP_INTERVAL` seconds
(by `store.purge_expired_sessions`)."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

logger = logging.getLogger(__name__)

# Deletes the expired sessions: how many, or None when another process is purging.
Purge = Callable[[], Awaitable[int | None]]


async def purge_forever(purge: Purge, interval: float) -> None:
    """Purge every `interval` seconds, logging (not raising) a failure."""
    while True:
        await asyncio.sleep(interval)
        try:
            purged = await purge()
            if purged is not None:
                logger.info("purged %d expired sessions", purged)
        except Exception:
            logger.exception("purging expired sessions failed")


@contextlib.asynccontextmanager
async def purging(purge: Purge, interval: float) -> AsyncIterator[None]:
    """Runs the purge in the background for as long as the context lasts."""
    purger = asyncio.create_task(purge_forever(purge, interval))
    try:
        yield
    finally:
        purger.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await purger
