"""The two forms of an email address, and account changes that must end
the user's sessions.

An email is stored and shown as the user gave it (`Credentials` trims it,
lower-cases its domain and writes that in its IDNA Unicode form), and
compared in its canonical form (`normalize_email`): uniqueness, logins and
login limits use that one.
"""

import unicodedata

from confusable_homoglyphs import categories
from fastapi import status
from fastapi.responses import JSONResponse

from ..db import DbSession
from ..models import User
from ..sessions.contract import UserSessions
from .passwords import hash_password
from .users import raise_credential_epoch, set_user_field

# Scripts that go with any other: digits and punctuation (Common), combining
# marks (Inherited).
_ANY_SCRIPT = {"COMMON", "INHERITED"}
# The mixes Unicode's "highly restrictive" level (UTS #39) allows: Latin with
# the scripts written together in Japanese, Chinese and Korean.
_MIXES = (
    {"LATIN", "HAN", "HIRAGANA", "KATAKANA"},
    {"LATIN", "HAN", "BOPOMOFO"},
    {"LATIN", "HAN", "HANGUL"},
)


def unverified_email() -> JSONResponse:
    """The answer to a right password when REQUIRE_VERIFIED_EMAIL is on and
    the address is not verified yet (403)."""
    return JSONResponse(
        {"detail": "Verify your email address first: follow the link mailed to you"},
        status.HTTP_403_FORBIDDEN,
    )


def normalize_email(email: str) -> str:
    """The canonical form: what every email is compared, looked up and
    rate-limited in, never shown.

    Surrounding whitespace goes, compatibility characters become their plain
    form (NFKC: `ﬁ` is `fi`, fullwidth letters are plain letters) and case is
    folded (`ß` matches `SS`: `Straße@` and `STRASSE@` are one account),
    normalised again as folding can denormalise. The column
    is then compared exactly: `victim@` and `victím@` are two addresses.
    """
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", email.strip()).casefold())


def mixes_scripts(email: str) -> bool:
    """Whether the local part mixes letters of scripts that are not written
    together: `paypal@` with a Cyrillic letter for its `a` passes for `paypal@`.

    The script of each character comes from Unicode's data as
    `confusable_homoglyphs` ships it (Python's `unicodedata` has no scripts);
    the mixes allowed are those of UTS #39's "highly restrictive" level.
    """
    local = normalize_email(email).rpartition("@")[0]
    scripts = {categories.alias(char) for char in local} - _ANY_SCRIPT
    return len(scripts) > 1 and not any(scripts <= mix for mix in _MIXES)


def revoke_credentials(user: User, store: UserSessions, db: DbSession) -> int:
    """End every session and refresh token of the user, including any saved later
    that was made before this call: raise the user's credential epoch (with
    the request's unit of work) and delete the sessions. Returns the new epoch.

    A session records the epoch its login read with the credentials
    (`Session.login`), and `get_current_user` and `/auth/refresh` refuse one
    older than the user's: a login that checked the old credentials, or a
    request that was in flight, and that saves its session after this call,
    is refused all the same. For every change of credentials (password
    change or reset) and "log out everywhere"; a session that must go on
    (the one that changed the password) is logged in again with the new
    epoch.
    """
    epoch = raise_credential_epoch(db, user)
    store.delete_for_user(user.id)
    return epoch


def change_password(
    user: User,
    new_password: str,
    store: UserSessions,
    db: DbSession,
) -> int:
    """Set a new password and end every session of the user
    (`revoke_credentials`): whoever held one, or knew the old password, is
    out. Returns the new credential epoch."""
    set_user_field(db, user, "password_hash", hash_password(new_password))
    return revoke_credentials(user, store, db)


def reset_password(
    user: User,
    new_password: str,
    store: UserSessions,
    db: DbSession,
) -> None:
    """A password reset by mail: the new password, and every session of the
    user ends, refresh tokens included (they live in the sessions), with
    any saved later by a login or request that began before it: the credential
    epoch rises (`revoke_credentials`)."""
    change_password(user, new_password, store, db)


def disable_user(user: User, store: UserSessions, db: DbSession) -> None:
    """Lock the user out (for admin routes and scripts): logins fail, and
    every session is deleted now, so requests that carry one get 401."""
    set_user_field(db, user, "is_active", False)
    store.delete_for_user(user.id)
