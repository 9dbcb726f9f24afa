"""What logins keep beside the sessions, in the database: every session of
a user (`UserSessions`, the session table by its `user_id`), and the
rate-limit counters (`LoginCounters`, the `rate_limits` table). A count is
the exception to the request's transaction: each commits at once, on its own.
"""

from typing import cast

from fastapi import Request
from sqlalchemy import Table, case, delete, select, update
from sqlalchemy.dialects.sqlite import insert as upsert

from ..db import DbSession
from ..models import RateLimit, SessionRecord
from .session import SessionState

_table = cast(Table, SessionRecord.__table__)
_limits = cast(Table, RateLimit.__table__)


class UserSessions:
    """Every session of one user, in the session table (`contract.UserSessions`)."""

    def __init__(self, db: DbSession) -> None:
        self.db = db

    async def list_for_user(self, user_id: int, now: float) -> list[SessionState]:
        result = await self.db.execute(
            select(_table)
            .where(_table.c.user_id == user_id, _table.c.expires_at > now)
            .order_by(_table.c.created_at)
        )
        return [SessionState(**row) for row in result.mappings()]

    async def delete_for_user(self, user_id: int) -> None:
        await self.db.execute(delete(_table).where(_table.c.user_id == user_id))


class LoginCounters:
    """Rate-limit counters in the `rate_limits` table (`auth.limits.Counters`).
    Each count commits at once, on its own."""

    def __init__(self, db: DbSession) -> None:
        self.db = db

    async def _commit(self) -> None:
        """End the request's transaction here, so that a rate-limit count is a
        transaction of its own that no later failure rolls back. Called where
        the request has only read (a login counts before anything else)."""
        if self.db.in_transaction():
            await self.db.commit()

    async def hit(self, key: str, window: int, now: float) -> tuple[int, float]:
        """Count one event under `key`, committed at once; returns the count in
        its current window (this one included) and when the window ends.

        One atomic upsert: of concurrent hits each sees its own count.
        """
        await self._commit()
        expired = _limits.c.resets_at <= now
        statement = upsert(_limits).values(name=key, hits=1, resets_at=now + window)
        statement = statement.on_conflict_do_update(
            index_elements=[_limits.c.name],
            set_={
                "hits": case((expired, 1), else_=_limits.c.hits + 1),
                "resets_at": case((expired, now + window), else_=_limits.c.resets_at),
            },
        )
        result = await self.db.execute(statement.returning(_limits.c.hits, _limits.c.resets_at))
        hits, resets_at = result.one()
        await self.db.commit()
        return hits, resets_at

    async def give_back(self, key: str, now: float) -> None:
        """Take back one event under `key` (if its window is still running)."""
        await self._commit()
        await self.db.execute(
            update(_limits)
            .where(_limits.c.name == key, _limits.c.resets_at > now, _limits.c.hits > 0)
            .values(hits=_limits.c.hits - 1)
        )
        await self.db.commit()

    async def clear(self, key: str) -> None:
        await self._commit()
        await self.db.execute(delete(_limits).where(_limits.c.name == key))
        await self.db.commit()


def request_user_sessions(_request: Request, db: DbSession) -> UserSessions:
    """The user-session index of this request: the session table, in the
    request's transaction."""
    return UserSessions(db)


def request_counters(_request: Request, db: DbSession) -> LoginCounters:
    """This request's rate-limit counters."""
    return LoginCounters(db)
