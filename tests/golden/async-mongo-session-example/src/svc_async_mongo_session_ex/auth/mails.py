"""The mails of accounts, made by the sender just before it sends them
(`mail/delivery.py`): a token is made then, and only its hash is stored, so
a request does the same work whether or not the account exists.

The links point at `PUBLIC_URL`, where a front end reads `token` from the
query string and posts it to the matching route.
"""

import hashlib
import secrets
import time
from urllib.parse import urlencode

from ..config import Settings
from ..db import DbSession
from ..mail.outbox import Pending
from ..mail.transport import Mail
from .accounts import normalize_email
from .users import add_token, find_user, get_user

# Seconds a verification or email-change link works.
LINK_LIFETIME = 7 * 24 * 3600
# The purposes of tokens: the route that takes each one.
VERIFY, RESET, EMAIL = "verify", "reset", "email"


def hash_token(token: str) -> str:
    """What is stored of a mailed token: its SHA-256 (it has 256 random bits)."""
    return hashlib.sha256(token.encode()).hexdigest()


def link(settings: Settings, path: str, token: str) -> str:
    return f"{settings.public_url}{path}?{urlencode({'token': token})}"


async def new_token(
    db: DbSession,
    user_id: int,
    purpose: str,
    lifetime: int,
    new_email: str | None = None,
) -> str:
    """A new token for `purpose`, stored as a hash; the earlier one stops working."""
    token = secrets.token_urlsafe(32)
    await add_token(db, hash_token(token), user_id, purpose, time.time() + lifetime, new_email)
    return token


async def compose(db: DbSession, settings: Settings, pending: Pending) -> Mail | None:
    """The mail `pending` stands for, or None when there is nothing to send
    (no such account, or already verified)."""
    to = pending.recipient
    if pending.kind == "verify":
        user = await get_user(db, pending.data["user_id"])
        if user is None or user.email_verified or user.email != to:
            return None
        token = await new_token(db, user.id, VERIFY, LINK_LIFETIME, user.email)
        return Mail(
            to,
            "Verify your email address",
            "Please confirm that this is your address by opening this link:\n\n"
            f"{link(settings, '/verify-email', token)}\n",
        )
    if pending.kind == "reset":
        user = await find_user(db, normalize_email(to))
        if user is None or not user.is_active:
            return None
        token = await new_token(db, user.id, RESET, settings.password_reset_token_lifetime)
        minutes = settings.password_reset_token_lifetime // 60
        return Mail(
            user.email,
            "Reset your password",
            "Someone (we hope you) asked to reset the password of your account.\n"
            f"Choose a new one within {minutes} minutes here:\n\n"
            f"{link(settings, '/reset-password', token)}\n\n"
            "If it was not you, ignore this mail: your password stays as it is.\n",
        )
    if pending.kind == "email_change":
        if await find_user(db, normalize_email(to)) is not None:
            return Mail(
                to,
                "Your email address was given for another account",
                "Someone asked to move an account to this address, which already has an\n"
                "account here. Nothing changes. If you want to use this address, log in\n"
                "with it instead (or reset its password).\n",
            )
        token = await new_token(db, pending.data["user_id"], EMAIL, LINK_LIFETIME, to)
        return Mail(
            to,
            "Confirm your new email address",
            "Please confirm that your account should use this address from now on:\n\n"
            f"{link(settings, '/confirm-email', token)}\n",
        )
    # "email_notice": to the old address.
    return Mail(
        to,
        "Your email address is being changed",
        f"Someone who knows your password asked to change your account's address to\n"
        f"{pending.data['new_email']}. It changes once that address confirms. If it was\n"
        "not you, change your password now.\n",
    )
