"""Delivering one mail of the outbox: take it, make it, send it, delete it."""

import logging
import time

from fastapi import FastAPI

from ..auth.mails import compose
from ..config import Settings
from .outbox import claim, retry_at, sent, transaction
from .transport import send

logger = logging.getLogger(__name__)
# Seconds a sender has to deliver a mail it took; then another may take it.
LEASE = 120.0
# Seconds before the first retry, doubled after each failure, up to MAX_BACKOFF.
FIRST_BACKOFF = 10.0
MAX_BACKOFF = 3600.0


async def deliver_next(app: FastAPI) -> bool:
    """Deliver one mail that is due, if any: whether there was one."""
    settings: Settings = app.state.settings
    async with transaction(app) as db:
        pending = await claim(db, time.time(), LEASE)
    if pending is None:
        return False
    try:
        # Its token is made and stored here, just before it is sent.
        async with transaction(app) as db:
            mail = await compose(db, settings, pending)
        if mail is not None:
            await send(settings, mail)
    except Exception:
        delay = min(MAX_BACKOFF, FIRST_BACKOFF * 2 ** (pending.attempts - 1))
        logger.warning(
            "mail %s not sent (attempt %d): retried in %.0f s",
            pending.id,
            pending.attempts,
            delay,
            exc_info=True,
        )
        async with transaction(app) as db:
            await retry_at(db, pending.id, time.time() + delay)
        return True
    async with transaction(app) as db:
        await sent(db, pending.id)
    return True
