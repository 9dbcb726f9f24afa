"""What a session store does, whichever backend keeps the sessions.

This project's store is `SessionStore` in `store.py`. Code outside
`sessions/` that is handed a store asks for one of these small interfaces,
not for that class, so a store of another backend only has to fulfil them
(mypy checks that this one does, where it is passed).
"""

from typing import Any, Protocol

from .session import SessionState


class Store(Protocol):
    """Sessions by id. Writes join the request's unit of work: they are kept
    when it commits and undone when it rolls back."""

    async def get(self, session_id: str, now: float) -> SessionState | None:
        """The live session with this id, or None (unknown or expired)."""

    async def add(self, state: SessionState) -> None:
        """Store a new session."""

    async def update(
        self,
        session_id: str,
        fields: dict[str, Any],
        changes: dict[str, Any],
    ) -> None:
        """Set `fields`, and apply `changes` (see `Session.changes`) to the data
        as stored at this moment, atomically: concurrent requests lose nothing.
        A session deleted meanwhile stays deleted."""

    async def delete(self, session_id: str) -> None:
        """Remove the session (logout)."""
