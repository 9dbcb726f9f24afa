"""The outbox collection: mails queued in the request's unit of work
(`Outbox`), taken and deleted by the sender (`delivery.py`)."""

import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from pymongo import ASCENDING, ReturnDocument

from ..db import DbSession, UnitOfWork, after_commit, next_id


@dataclass(frozen=True)
class Pending:
    """A mail taken from the outbox by one sender."""

    id: int
    kind: str
    recipient: str
    data: dict[str, Any]
    attempts: int


class Outbox:
    """The request's outbox: what it queues is sent once the request's unit
    of work commits, and never if it fails."""

    def __init__(self, db: UnitOfWork, wake: Any) -> None:
        self.db = db
        self.wake = wake

    async def queue(self, kind: str, recipient: str, **data: Any) -> None:
        document = {
            "_id": await next_id(self.db, "outbox"),
            "kind": kind,
            "recipient": recipient,
            "data": data,
            "attempts": 0,
            "not_before": time.time(),
        }
        await self.db.outbox.insert_one(document, session=self.db.txn)
        self.db.on_rollback(partial(self.db.outbox.delete_one, {"_id": document["_id"]}))
        after_commit(self.db, self.wake)


@contextlib.asynccontextmanager
async def transaction(app: FastAPI) -> AsyncIterator[UnitOfWork]:
    """One unit of work of the sender's (its writes undone if the block fails)."""
    db = UnitOfWork(app.state.mongo.database, None)
    try:
        yield db
        await db.commit()
    except BaseException:
        await db.rollback()
        raise


async def claim(db: UnitOfWork, now: float, lease: float) -> Pending | None:
    """Take a due mail for `lease` seconds: no other sender takes it meanwhile."""
    document = await db.outbox.find_one_and_update(
        {"not_before": {"$lte": now}},
        {"$set": {"not_before": now + lease}, "$inc": {"attempts": 1}},
        sort=[("not_before", ASCENDING)],
        return_document=ReturnDocument.AFTER,
    )
    if document is None:
        return None
    return Pending(
        id=document["_id"],
        kind=document["kind"],
        recipient=document["recipient"],
        data=document["data"],
        attempts=document["attempts"],
    )


async def sent(db: UnitOfWork, mail_id: int) -> None:
    await db.outbox.delete_one({"_id": mail_id})


async def retry_at(db: UnitOfWork, mail_id: int, when: float) -> None:
    await db.outbox.update_one({"_id": mail_id}, {"$set": {"not_before": when}})


async def get_outbox(request: Request, db: DbSession) -> Outbox:
    return Outbox(db, request.app.state.mail_sender.wake)


OutboxDep = Annotated[Outbox, Depends(get_outbox)]
