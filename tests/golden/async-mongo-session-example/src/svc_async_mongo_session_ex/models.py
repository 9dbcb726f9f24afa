"""The collections and their indexes, created at start-up (`create_indexes`).

- `users`: `{_id, email, email_canonical, password_hash, is_active,
  credential_epoch, email_verified, totp_secret, totp_pending, totp_step,
  recovery_codes}`: `email` as the user gave it, `email_canonical` its
  canonical form (`auth.accounts.normalize_email`), unique;
  `credential_epoch` raised by every change of credentials; the fields after
  `is_active` are missing in users of earlier releases and read as defaults
  (the second factor's: `auth/totp.py`).
- `outbox`: `{_id, kind, recipient, data, attempts, not_before}`: mails to
  send (`mail/sender.py`).
- `account_tokens`: `{_id: SHA-256 of the token, user_id, purpose, new_email,
  expires_at}`: the tokens mails carry.
- `products`: `{_id, name, price_cents, stock}`.
- `orders`: `{_id, user_id, total_cents, items: [{product_id, quantity, price_cents}]}`.
- `counters`: `{_id: collection name, value}`, the last integer id handed out.
"""

from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure


@dataclass
class User:
    id: int
    email: str
    email_canonical: str
    password_hash: str
    is_active: bool = True
    # Raised by every change of credentials (`auth.accounts.revoke_credentials`):
    # a session made before it (`SessionState.credential_epoch` below it) is refused.
    credential_epoch: int = 0
    email_verified: bool = False
    # The second factor (`auth/totp.py`): its secret, encrypted; a secret set
    # up but not confirmed yet; the time step of the last code used; the
    # unused recovery codes, as SHA-256 hashes. Users of earlier releases
    # have none of these fields: they read as these defaults.
    totp_secret: str | None = None
    totp_pending: str | None = None
    totp_step: int | None = None
    recovery_codes: list[str] = field(default_factory=list)

    @classmethod
    def from_document(cls, document: dict[str, Any] | None) -> "User | None":
        if document is None:
            return None
        return cls(
            id=document["_id"],
            email=document["email"],
            email_canonical=document["email_canonical"],
            password_hash=document["password_hash"],
            is_active=document["is_active"],
            credential_epoch=document.get("credential_epoch", 0),
            # Users stored before verification have none: not verified.
            email_verified=document.get("email_verified", False),
            totp_secret=document.get("totp_secret"),
            totp_pending=document.get("totp_pending"),
            totp_step=document.get("totp_step"),
            recovery_codes=document.get("recovery_codes", []),
        )

    def to_document(self) -> dict[str, Any]:
        return {
            "_id": self.id,
            "email": self.email,
            "email_canonical": self.email_canonical,
            "password_hash": self.password_hash,
            "is_active": self.is_active,
            "credential_epoch": self.credential_epoch,
            "email_verified": self.email_verified,
            "totp_secret": self.totp_secret,
            "totp_pending": self.totp_pending,
            "totp_step": self.totp_step,
            "recovery_codes": self.recovery_codes,
        }


@dataclass
class AccountToken:
    token_hash: str
    user_id: int
    purpose: str
    new_email: str | None
    expires_at: float

    @classmethod
    def from_document(cls, document: dict[str, Any]) -> "AccountToken":
        return cls(
            token_hash=document["_id"],
            user_id=document["user_id"],
            purpose=document["purpose"],
            new_email=document["new_email"],
            expires_at=document["expires_at"],
        )

    def to_document(self) -> dict[str, Any]:
        return {
            "_id": self.token_hash,
            "user_id": self.user_id,
            "purpose": self.purpose,
            "new_email": self.new_email,
            "expires_at": self.expires_at,
        }


async def _add_canonical_emails(database: AsyncDatabase[dict[str, Any]]) -> None:
    """Users stored by releases before `email_canonical` have none: their
    `email` holds the canonical form (those releases stored only that), so it
    becomes their canonical form. Run before that field's unique index is
    created; a no-op once done."""
    missing = {"email_canonical": {"$exists": False}}
    for document in await database.users.find(missing, {"email": 1}).to_list():
        await database.users.update_one(
            {"_id": document["_id"], **missing},
            {"$set": {"email_canonical": document["email"]}},
        )


async def create_indexes(database: AsyncDatabase[dict[str, Any]]) -> None:
    """Create the indexes this service needs (a no-op when they exist), after
    giving the users of earlier releases their canonical email."""
    await _add_canonical_emails(database)
    await database.users.create_index([("email_canonical", ASCENDING)], unique=True)
    # The unique index on `email` of releases before `email_canonical`: gone,
    # as `email` is no longer compared.
    if "email_1" in await database.users.index_information():
        with suppress(OperationFailure):  # another process starting now dropped it
            await database.users.drop_index("email_1")
    await database.outbox.create_index([("not_before", ASCENDING)])
    await database.account_tokens.create_index([("user_id", ASCENDING)])
    await database.orders.create_index([("user_id", ASCENDING)])
