"""The mail sender: a task in every process that delivers the outbox.

Requests queue mails in their own transaction (`outbox.Outbox`); once it
commits they wake the sender, which also looks every `POLL_INTERVAL` seconds
(mails queued by another process, retries, mails left by a process that
stopped). Each mail is taken under a lease (`delivery.LEASE`), so two
processes never send one mail at once; one the SMTP server refused is
retried later, with back-off; it is deleted once the server took it.
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI

from .delivery import deliver_next

logger = logging.getLogger(__name__)
# Seconds between looks at the outbox when nothing woke the sender.
POLL_INTERVAL = 5.0
# Seconds a stopping sender gets to finish the mail in hand.
STOP_TIMEOUT = 10.0


class Sender:
    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._loop = asyncio.get_running_loop()
        self._due = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self._stopping = False
        self._failing = False

    def wake(self) -> None:
        """A mail was queued and committed: send it now. Safe from any thread."""
        self._loop.call_soon_threadsafe(self._due.set)

    async def stop(self) -> None:
        """Stop after the mail in hand, if any (cancelled mid-transaction, a
        database connection could be left behind)."""
        self._stopping = True
        self._due.set()
        if self.task is None or self.task.done():
            return
        try:
            await asyncio.wait_for(asyncio.shield(self.task), STOP_TIMEOUT)
        except TimeoutError:
            self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    async def run(self) -> None:
        while not self._stopping:
            self._due.clear()
            try:
                busy = await deliver_next(self.app)
            except Exception as exc:
                # Once per outage, in one line (the database is down, most likely).
                if not self._failing:
                    reason = (str(exc).splitlines() or [type(exc).__name__])[0]
                    logger.warning("the mail outbox could not be read: %s", reason)
                self._failing = True
                busy = False
            else:
                self._failing = False
            if not busy and not self._stopping:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._due.wait(), POLL_INTERVAL)


@contextlib.asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[None]:
    """The sender, for as long as the application runs (`app.state.mail_sender`)."""
    sender = Sender(app)
    app.state.mail_sender = sender
    sender.task = asyncio.create_task(sender.run())
    try:
        yield
    finally:
        await sender.stop()
