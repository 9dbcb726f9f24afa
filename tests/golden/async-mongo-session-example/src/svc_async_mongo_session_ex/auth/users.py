"""The users collection: every read and write of users goes through here.

Each email comes with its canonical form (`auth.accounts.normalize_email`):
the users are found, and are unique, by that. Writes join the request's unit
of work: a request that fails undoes them.
"""

from functools import partial

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from ..db import UnitOfWork, next_id
from ..models import AccountToken, User


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


async def raise_credential_epoch(db: UnitOfWork, user: User) -> int:
    """Add 1 to the user's `credential_epoch` (0 when absent) and return it
    (`user` gets it too): one atomic `$inc`, so concurrent raises all count
    and each gets its own. Undone by its opposite if the request fails."""
    document = await db.users.find_one_and_update(
        {"_id": user.id},
        {"$inc": {"credential_epoch": 1}},
        projection={"credential_epoch": 1},
        return_document=ReturnDocument.AFTER,
        session=db.txn,
    )
    undo = {"$inc": {"credential_epoch": -1}}
    db.on_rollback(partial(db.users.update_one, {"_id": user.id}, undo))
    user.credential_epoch = document["credential_epoch"] if document else user.credential_epoch + 1
    return user.credential_epoch


async def change_email(db: UnitOfWork, user: User, email: str, canonical: str) -> bool:
    """Give the user a new, verified email; False (nothing changed) when
    another user has it."""
    values = {"email": email, "email_canonical": canonical, "email_verified": True}
    previous = {field: getattr(user, field) for field in values}
    try:
        await db.users.update_one({"_id": user.id}, {"$set": values}, session=db.txn)
    except DuplicateKeyError:
        return False
    db.on_rollback(partial(db.users.update_one, {"_id": user.id}, {"$set": previous}))
    for field, value in values.items():
        setattr(user, field, value)
    return True


async def add_token(
    db: UnitOfWork,
    token_hash: str,
    user_id: int,
    purpose: str,
    expires_at: float,
    new_email: str | None = None,
) -> None:
    """Store a mailed token's hash; the user's earlier token for `purpose` stops working."""
    retired = {"user_id": user_id, "purpose": purpose}
    earlier = await db.account_tokens.find(retired, session=db.txn).to_list()
    await db.account_tokens.delete_many(retired, session=db.txn)
    if earlier:
        db.on_rollback(partial(db.account_tokens.insert_many, earlier))
    token = AccountToken(token_hash, user_id, purpose, new_email, expires_at)
    await db.account_tokens.insert_one(token.to_document(), session=db.txn)
    db.on_rollback(partial(db.account_tokens.delete_one, {"_id": token_hash}))


async def take_token(
    db: UnitOfWork,
    token_hash: str,
    purpose: str,
    now: float,
) -> AccountToken | None:
    """The token, used up (deleted) by this call, or None when it is unknown,
    used, or expired. Of concurrent uses, one gets it."""
    document = await db.account_tokens.find_one_and_delete(
        {"_id": token_hash, "purpose": purpose}, session=db.txn
    )
    if document is None:
        return None
    db.on_rollback(partial(db.account_tokens.insert_one, document))
    token = AccountToken.from_document(document)
    return token if token.expires_at > now else None


async def use_time_step(db: UnitOfWork, user: User, step: int) -> bool:
    """Record `step` as the time step of the user's last code, if it is
    later than the last one; False if not (that code, or a later one, was
    used). One conditional update: of concurrent requests with one code,
    one wins."""
    previous = user.totp_step
    newer = {"$or": [{"totp_step": None}, {"totp_step": {"$lt": step}}]}
    result = await db.users.update_one(
        {"_id": user.id, **newer}, {"$set": {"totp_step": step}}, session=db.txn
    )
    if result.modified_count != 1:
        return False
    undo = {"$set": {"totp_step": previous}}
    db.on_rollback(partial(db.users.update_one, {"_id": user.id}, undo))
    user.totp_step = step
    return True


async def use_recovery_code(db: UnitOfWork, user: User, code_hash: str) -> bool:
    """Remove the user's recovery code with this hash; False if there is none
    (unknown, or used: of concurrent requests with one code, one wins)."""
    result = await db.users.update_one(
        {"_id": user.id, "recovery_codes": code_hash},
        {"$pull": {"recovery_codes": code_hash}},
        session=db.txn,
    )
    if result.modified_count != 1:
        return False
    db.on_rollback(
        partial(db.users.update_one, {"_id": user.id}, {"$push": {"recovery_codes": code_hash}})
    )
    return True


async def set_recovery_codes(db: UnitOfWork, user: User, code_hashes: list[str]) -> None:
    """Replace the user's recovery codes (none: `[]`)."""
    await set_user_field(db, user, "recovery_codes", code_hashes)


async def end_reads(_db: UnitOfWork) -> None:
    """Called before a password is hashed (~0.2 s), so that no pooled
    connection idles through it: pymongo takes one per operation, never
    for the whole request, so there is nothing to release."""
