"""The users table: every read and write of users goes through here.

Emails arrive normalised (`auth.accounts.normalize_email`).
"""

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from ..models import User


async def get_user(db: AsyncSession, user_id: int) -> User | None:
    return await db.get(User, user_id)


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
    """Change one field; written with the request's transaction."""
    setattr(user, field, value)
    db.add(user)
