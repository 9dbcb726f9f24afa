"""The one form of an email address, and account changes that must end
the user's sessions."""

import unicodedata

from ..db import DbSession
from ..models import User
from ..sessions.contract import UserSessions
from .passwords import hash_password
from .users import set_user_field


def normalize_email(email: str) -> str:
    """The form every email is stored, looked up and rate-limited in.

    Surrounding whitespace goes, compatibility characters become their plain
    form (NFKC: fullwidth letters are plain letters) and case is folded (`ß`
    matches `SS`), normalised again as folding can denormalise. The column
    is then compared exactly: `victim@` and `victím@` are two addresses.
    """
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", email.strip()).casefold())


async def change_password(
    user: User,
    new_password: str,
    store: UserSessions,
    db: DbSession,
) -> None:
    """Set a new password and delete every session of the user: whoever held
    one, or knew the old password, is out."""
    await set_user_field(db, user, "password_hash", await hash_password(new_password))
    await store.delete_for_user(user.id)


async def disable_user(user: User, store: UserSessions, db: DbSession) -> None:
    """Lock the user out (for admin routes and scripts): logins fail, and
    every session is deleted now, so requests that carry one get 401."""
    await set_user_field(db, user, "is_active", False)
    await store.delete_for_user(user.id)
