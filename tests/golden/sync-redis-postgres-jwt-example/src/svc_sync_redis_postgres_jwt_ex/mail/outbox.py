"""The outbox table: mails queued in the request's transaction (`Outbox`),
taken and deleted by the sender (`delivery.py`) in transactions of its own."""

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, cast

from fastapi import Depends, FastAPI, Request
from sqlalchemy import CursorResult, Table, delete, select, update

from ..db import DbSession, after_commit
from ..models import OutboxMail

_outbox = cast(Table, OutboxMail.__table__)
# Due mails looked at per claim (another sender may take some first).
CANDIDATES = 10


@dataclass(frozen=True)
class Pending:
    """A mail taken from the outbox by one sender."""

    id: int
    kind: str
    recipient: str
    data: dict[str, Any]
    attempts: int


class Outbox:
    """The request's outbox: what it queues is sent once the request's
    transaction commits, and never if it fails."""

    def __init__(self, db: DbSession, wake: Any) -> None:
        self.db = db
        self.wake = wake

    def queue(self, kind: str, recipient: str, **data: Any) -> None:
        mail = OutboxMail(kind=kind, recipient=recipient, data=data, attempts=0)
        mail.not_before = time.time()
        self.db.add(mail)
        self.db.flush()
        after_commit(self.db, self.wake)


@contextlib.contextmanager
def transaction(app: FastAPI) -> Iterator[DbSession]:
    """One transaction of the sender's, committed when the block ends."""
    with app.state.sessionmaker.begin() as db:
        yield db


def claim(db: DbSession, now: float, lease: float) -> Pending | None:
    """Take a due mail for `lease` seconds: no other sender takes it meanwhile."""
    due = db.execute(
        select(_outbox)
        .where(_outbox.c.not_before <= now)
        .order_by(_outbox.c.not_before)
        .limit(CANDIDATES)
    )
    for row in due.mappings().all():
        taken = db.execute(
            update(_outbox)
            .where(_outbox.c.id == row["id"], _outbox.c.not_before <= now)
            .values(not_before=now + lease, attempts=_outbox.c.attempts + 1)
        )
        if cast(CursorResult[Any], taken).rowcount == 1:
            return Pending(
                id=row["id"],
                kind=row["kind"],
                recipient=row["recipient"],
                data=row["data"],
                attempts=row["attempts"] + 1,
            )
    return None


def sent(db: DbSession, mail_id: int) -> None:
    db.execute(delete(_outbox).where(_outbox.c.id == mail_id))


def retry_at(db: DbSession, mail_id: int, when: float) -> None:
    db.execute(update(_outbox).where(_outbox.c.id == mail_id).values(not_before=when))


# No I/O: `async`, so FastAPI runs it in the event loop, not in a worker thread.
async def get_outbox(request: Request, db: DbSession) -> Outbox:
    return Outbox(db, request.app.state.mail_sender.wake)


OutboxDep = Annotated[Outbox, Depends(get_outbox)]
