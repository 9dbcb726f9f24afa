"""The collections and their indexes, created at start-up (`create_indexes`).

- `users`: `{_id, email, email_canonical, password_hash, is_active}`: `email`
  as the user gave it, `email_canonical` its canonical form
  (`auth.accounts.normalize_email`), unique.
- `products`: `{_id, name, price_cents, stock}`.
- `orders`: `{_id, user_id, total_cents, items: [{product_id, quantity, price_cents}]}`.
- `counters`: `{_id: collection name, value}`, the last integer id handed out.
"""

from contextlib import suppress
from dataclasses import dataclass
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
        )

    def to_document(self) -> dict[str, Any]:
        return {
            "_id": self.id,
            "email": self.email,
            "email_canonical": self.email_canonical,
            "password_hash": self.password_hash,
            "is_active": self.is_active,
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
    await database.orders.create_index([("user_id", ASCENDING)])
