"""The collections and their indexes, created at start-up (`create_indexes`).

- `counters`: `{_id: collection name, value}`, the last integer id handed out.
"""

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase


async def create_indexes(database: AsyncDatabase[dict[str, Any]]) -> None:
    """Create the indexes this service needs (a no-op when they exist)."""
    # None yet: add yours here.
