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

    def get(self, session_id: str, now: float) -> SessionState | None:
        """The live session with this id, or None (unknown or expired)."""

    def add(self, state: SessionState) -> None:
        """Store a new session."""

    def update(
        self,
        session_id: str,
        fields: dict[str, Any],
        changes: dict[str, Any],
    ) -> None:
        """Set `fields`, and apply `changes` (see `Session.changes`) to the data
        as stored at this moment, atomically: concurrent requests lose nothing.
        A session deleted meanwhile stays deleted."""

    def take(self, session_id: str, prefix: str) -> dict[str, Any]:
        """Remove the data keys starting with `prefix` and return them,
        atomically: of concurrent takes, one gets the keys."""

    def delete(self, session_id: str) -> None:
        """Remove the session (logout)."""

    def get_by_handle(self, handle: str, now: float) -> SessionState | None:
        """The live session with this public handle (the `sid` claim), or None."""

    def replace_refresh_hash(self, session_id: str, old: str, new: str) -> bool:
        """Compare-and-set the refresh token's hash: False when it is no longer `old`."""


class UserSessions(Protocol):
    """Every session of one user: for listings, and to end them all."""

    def list_for_user(self, user_id: int, now: float) -> list[SessionState]:
        """The user's live sessions, oldest first."""

    def delete_for_user(self, user_id: int) -> None:
        """End every session of the user."""


class Counters(Protocol):
    """Rate-limit counters, shared by every worker process (`auth.limits`)."""

    def hit(self, key: str, window: int, now: float) -> tuple[int, float]:
        """Count one event under `key`, at once and outside the request's unit
        of work; returns the count in the current window (this one included)
        and when the window ends."""

    def give_back(self, key: str, now: float) -> None:
        """Take back one event under `key`, if its window is still running."""

    def clear(self, key: str) -> None:
        """Start the count under `key` again."""
