"""The users table: every read and write of users goes through here.

Each email comes with its canonical form (`auth.accounts.normalize_email`):
the users are found, and are unique, by that.
"""

from typing import Any, cast

from sqlalchemy import CursorResult, Table, bindparam, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import set_committed_value

from ..db import DbSession, read_row
from ..models import AccountToken, RecoveryCode, User

_users = cast(Table, User.__table__)
_tokens = cast(Table, AccountToken.__table__)
_recovery_codes = cast(Table, RecoveryCode.__table__)
# Read on every authenticated request: built once, as the session reads are.
_BY_ID = select(_users).where(_users.c.id == bindparam("id"))


def get_user(db: DbSession, user_id: int) -> User | None:
    """The user, read with `read_row` (so on its own before the request's
    transaction begins), as a copy that `db` does not track: change it with
    `set_user_field`."""
    row = read_row(db, _BY_ID, {"id": user_id})
    return User(**row) if row is not None else None


def find_user(db: DbSession, canonical: str) -> User | None:
    """The user whose email has the canonical form `canonical`."""
    return db.scalar(select(User).where(User.email_canonical == canonical))


def add_user(db: DbSession, email: str, canonical: str, password_hash: str) -> User | None:
    """The new user, or None when the email is taken (the unique index on the
    canonical form says so)."""
    user = User(email=email, email_canonical=canonical, password_hash=password_hash)
    db.add(user)
    try:
        db.flush()
    except IntegrityError:
        return None
    return user


def set_user_field(db: DbSession, user: User, field: str, value: object) -> None:
    """Change one field, written with the request's transaction by an UPDATE
    (`user` may be a copy from `get_user`)."""
    db.execute(update(_users).where(_users.c.id == user.id).values({field: value}))
    set_committed_value(user, field, value)


def raise_credential_epoch(db: DbSession, user: User) -> int:
    """Add 1 to the user's `credential_epoch` in the request's transaction,
    and return it (`user` gets it too). The UPDATE adds to the value as
    stored, under the row's lock until the commit: concurrent raises all
    count, and each reads back its own."""
    column = _users.c.credential_epoch
    db.execute(update(_users).where(_users.c.id == user.id).values({column: column + 1}))
    epoch = db.scalar(select(column).where(_users.c.id == user.id))
    set_committed_value(user, "credential_epoch", epoch)
    return user.credential_epoch


def change_email(db: DbSession, user: User, email: str, canonical: str) -> bool:
    """Give the user a new, verified email; False (nothing changed) when
    another user has it."""
    values = {"email": email, "email_canonical": canonical, "email_verified": True}
    try:
        with db.begin_nested():
            db.execute(update(_users).where(_users.c.id == user.id).values(values))
    except IntegrityError:
        return False
    for field, value in values.items():
        set_committed_value(user, field, value)
    return True


def add_token(
    db: DbSession,
    token_hash: str,
    user_id: int,
    purpose: str,
    expires_at: float,
    new_email: str | None = None,
) -> None:
    """Store a mailed token's hash; the user's earlier token for `purpose` stops working."""
    retired = delete(_tokens).where(_tokens.c.user_id == user_id, _tokens.c.purpose == purpose)
    db.execute(retired)
    db.add(
        AccountToken(
            token_hash=token_hash,
            user_id=user_id,
            purpose=purpose,
            new_email=new_email,
            expires_at=expires_at,
        )
    )
    db.flush()


def take_token(
    db: DbSession,
    token_hash: str,
    purpose: str,
    now: float,
) -> AccountToken | None:
    """The token, used up (deleted) by this call, or None when it is unknown,
    used, or expired. Of concurrent uses, one gets it."""
    found = db.execute(
        select(_tokens).where(_tokens.c.token_hash == token_hash, _tokens.c.purpose == purpose)
    )
    row = found.mappings().first()
    if row is None:
        return None
    result: Any = db.execute(delete(_tokens).where(_tokens.c.token_hash == token_hash))
    if cast(CursorResult[Any], result).rowcount != 1 or row["expires_at"] <= now:
        return None
    return AccountToken(**row)


def use_time_step(db: DbSession, user: User, step: int) -> bool:
    """Record `step` as the time step of the user's last code, if it is
    later than the last one; False if not (that code, or a later one, was
    used). One conditional UPDATE: of concurrent requests with one code,
    one wins."""
    newer = or_(_users.c.totp_step.is_(None), _users.c.totp_step < step)
    statement = update(_users).where(_users.c.id == user.id, newer).values(totp_step=step)
    result = db.execute(statement)
    if cast(CursorResult[Any], result).rowcount != 1:
        return False
    set_committed_value(user, "totp_step", step)
    return True


def use_recovery_code(db: DbSession, user: User, code_hash: str) -> bool:
    """Delete the user's recovery code with this hash; False if there is none
    (unknown, or used: of concurrent requests with one code, one wins)."""
    result = db.execute(
        delete(_recovery_codes).where(
            _recovery_codes.c.user_id == user.id, _recovery_codes.c.code_hash == code_hash
        )
    )
    return cast(CursorResult[Any], result).rowcount == 1


def set_recovery_codes(db: DbSession, user: User, code_hashes: list[str]) -> None:
    """Replace the user's recovery codes (none: `[]`)."""
    db.execute(delete(_recovery_codes).where(_recovery_codes.c.user_id == user.id))
    if code_hashes:
        db.execute(
            insert(_recovery_codes),
            [{"user_id": user.id, "code_hash": code_hash} for code_hash in code_hashes],
        )


def end_reads(db: DbSession) -> None:
    """End the request's transaction where it has only read so far (the user):
    its pooled connection goes back before a password is hashed (~0.2 s),
    instead of idling through it. Later writes begin a new transaction."""
    if db.in_transaction():
        db.commit()
