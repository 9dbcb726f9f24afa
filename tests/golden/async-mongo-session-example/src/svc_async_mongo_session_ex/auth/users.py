"""The users collection: every read and write of users goes through here.

Each email comes with its canonical form (`auth.accounts.normalize_email`):
the users are found, and are unique, by that. Writes join the request's unit
of work: a request that fails undoes them.
"""

from functools import partial

from pymongo.errors import DuplicateKeyError

from ..db import UnitOfWork, next_id
from ..models import User


async def get_user(db: UnitOfWork, user_id: int) -> User | None:
    return User.from_document(await db.users.find_one({"_id": user_id}, session=db.txn))


async def find_user(db: UnitOfWork, canonical: str) -> User | None:
    """The user whose email has the canonical form `canonical`."""
    document = await db.users.find_one({"email_canonical": canonical}, session=db.txn)
    return User.from_document(document)


async def add_user(db: UnitOfWork, email: str, canonical: str, password_hash: str) -> User | None:
    """The new user, or None when the email is taken (the unique index on the
    canonical form says so)."""
    user = User(
        id=await next_id(db, "users"),
        email=email,
        email_canonical=canonical,
        password_hash=password_hash,
    )
    try:
        await db.users.insert_one(user.to_document(), session=db.txn)
    except DuplicateKeyError:
        return None
    db.on_rollback(partial(db.users.delete_one, {"_id": user.id}))
    return user


async def set_user_field(db: UnitOfWork, user: User, field: str, value: object) -> None:
    """Change one field of the user's document (undone if the request fails)."""
    previous = getattr(user, field)
    await db.users.update_one({"_id": user.id}, {"$set": {field: value}}, session=db.txn)
    db.on_rollback(partial(db.users.update_one, {"_id": user.id}, {"$set": {field: previous}}))
    setattr(user, field, value)


async def end_reads(_db: UnitOfWork) -> None:
    """Called before a password is hashed (~0.2 s), so that no pooled
    connection idles through it: pymongo takes one per operation, never
    for the whole request, so there is nothing to release."""
