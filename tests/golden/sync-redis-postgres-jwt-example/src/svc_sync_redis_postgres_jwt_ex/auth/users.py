"""The users table: every read and write of users goes through here.

Emails arrive normalised (`auth.accounts.normalize_email`).
"""

from sqlalchemy import orm, select
from sqlalchemy.exc import IntegrityError

from ..models import User


def get_user(db: orm.Session, user_id: int) -> User | None:
    return db.get(User, user_id)


def find_user(db: orm.Session, email: str) -> User | None:
    return db.scalar(select(User).where(User.email == email))


def add_user(db: orm.Session, email: str, password_hash: str) -> User | None:
    """The new user, or None when the email is taken (the unique index says so)."""
    user = User(email=email, password_hash=password_hash)
    db.add(user)
    try:
        db.flush()
    except IntegrityError:
        return None
    return user


def set_user_field(db: orm.Session, user: User, field: str, value: object) -> None:
    """Change one field; written with the request's transaction."""
    setattr(user, field, value)
    db.add(user)
