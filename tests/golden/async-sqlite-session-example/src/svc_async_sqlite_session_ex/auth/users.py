"""The users table: every read and write of users goes through here.

Emails arrive normalised (`auth.accounts.normalize_email`).
"""

from typing import cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from ..db import read_row
from ..models import User

_users = cast(Table, User.__table__)
# Read on every authenticated request: built once, as the session reads are.
_BY_ID = select(_users).where(_users.c.id == bindparam("id"))


async def get_user(db: AsyncSession, user_id: int) -> User | None:
    """The user, read with `read_row` (so on its own before the request's
    transaction begins), as a copy that `db` does not track: change it with
    `set_user_field`."""
    row = await read_row(db, _BY_ID, {"id": user_id})
    return User(**row) if row is not None else None


async def find_user(db: AsyncSession, email: str) -> User | None:
    return await db.scalar(select(User).where(User.email == email))


async def add_user(db: AsyncSession, email: str, password_hash: str) -> User | None:
    """The new user, or None when the email is taken (the unique index says so)."""
    user = User(email=email, password_hash=password_hash)
    db.add(user)
    try:
        await db.flush()
    except IntegrityError:
        return None
    return user


async def set_user_field(db: AsyncSession, user: User, field: str, value: object) -> None:
    """Change one field, written with the request's transaction by an UPDATE
    (`user` may be a copy from `get_user`)."""
    await db.execute(update(_users).where(_users.c.id == user.id).values({field: value}))
    set_committed_value(user, field, value)
