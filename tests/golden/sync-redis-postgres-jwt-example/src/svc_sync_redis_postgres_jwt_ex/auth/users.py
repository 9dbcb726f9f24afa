"""The users table: every read and write of users goes through here.

Each email comes with its canonical form (`auth.accounts.normalize_email`):
the users are found, and are unique, by that.
"""

from typing import cast

from sqlalchemy import Table, bindparam, orm, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import set_committed_value

from ..db import read_row
from ..models import User

_users = cast(Table, User.__table__)
# Read on every authenticated request: built once, as the session reads are.
_BY_ID = select(_users).where(_users.c.id == bindparam("id"))


def get_user(db: orm.Session, user_id: int) -> User | None:
    """The user, read with `read_row` (so on its own before the request's
    transaction begins), as a copy that `db` does not track: change it with
    `set_user_field`."""
    row = read_row(db, _BY_ID, {"id": user_id})
    return User(**row) if row is not None else None


def find_user(db: orm.Session, canonical: str) -> User | None:
    """The user whose email has the canonical form `canonical`."""
    return db.scalar(select(User).where(User.email_canonical == canonical))


def add_user(db: orm.Session, email: str, canonical: str, password_hash: str) -> User | None:
    """The new user, or None when the email is taken (the unique index on the
    canonical form says so)."""
    user = User(email=email, email_canonical=canonical, password_hash=password_hash)
    db.add(user)
    try:
        db.flush()
    except IntegrityError:
        return None
    return user


def set_user_field(db: orm.Session, user: User, field: str, value: object) -> None:
    """Change one field, written with the request's transaction by an UPDATE
    (`user` may be a copy from `get_user`)."""
    db.execute(update(_users).where(_users.c.id == user.id).values({field: value}))
    set_committed_value(user, field, value)


def end_reads(db: orm.Session) -> None:
    """End the request's transaction where it has only read so far (the user):
    its pooled connection goes back before a password is hashed (~0.2 s),
    instead of idling through it. Later writes begin a new transaction."""
    if db.in_transaction():
        db.commit()
