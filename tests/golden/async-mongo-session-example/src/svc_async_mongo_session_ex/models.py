"""The collections and their indexes, created at start-up (`create_indexes`).

- `users`: `{_id, email, password_hash, is_active}`, email unique.
- `sessions` and `rate_limits`: see `sessions/mongo_store.py`.
- `products`: `{_id, name, price_cents, stock}`.
- `orders`: `{_id, user_id, total_cents, items: [{product_id, quantity, price_cents}]}`.
- `counters`: `{_id: collection name, value}`, the last integer id handed out.
"""

from dataclasses import dataclass
from typing import Any

from pymongo import ASCENDING, IndexModel
from pymongo.asynchronous.database import AsyncDatabase


@dataclass
class User:
    id: int
    email: str
    password_hash: str
    is_active: bool = True

    @classmethod
    def from_document(cls, document: dict[str, Any] | None) -> "User | None":
        if document is None:
            return None
        return cls(
            id=document["_id"],
            email=document["email"],
            password_hash=document["password_hash"],
            is_active=document["is_active"],
        )

    def to_document(self) -> dict[str, Any]:
        return {
            "_id": self.id,
            "email": self.email,
            "password_hash": self.password_hash,
            "is_active": self.is_active,
        }


async def create_indexes(database: AsyncDatabase[dict[str, Any]]) -> None:
    """Create the indexes this service needs (a no-op when they exist)."""
    await database.users.create_index([("email", ASCENDING)], unique=True)
    await database.sessions.create_indexes(
        [
            IndexModel([("handle", ASCENDING)], unique=True),
            IndexModel([("user_id", ASCENDING)]),
            # MongoDB deletes a session about a minute after `expires`.
            IndexModel([("expires", ASCENDING)], expireAfterSeconds=0),
        ]
    )
    await database.rate_limits.create_index([("expires", ASCENDING)], expireAfterSeconds=0)
    await database.orders.create_index([("user_id", ASCENDING)])
