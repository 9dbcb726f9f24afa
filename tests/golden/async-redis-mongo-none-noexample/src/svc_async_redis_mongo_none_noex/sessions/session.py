"""The request's server-side session: what routes read and change."""

import hashlib
import json
import secrets
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException


@dataclass
class SessionState:
    """One stored session.
    `id` is the SHA-256 of the secret token the client holds, so the store
    never sees a usable session id. `handle` is a public name for listings.
    """

    id: str
    handle: str
    data: dict[str, Any]
    created_at: float
    last_seen: float
    expires_at: float


# The value of a key deleted by a request, in `Session.changes()`.
DELETED: Any = object()


@dataclass(frozen=True)
class Increment:
    """A change that adds `by` to a key's number as stored at save time (a
    missing key counts as 0), in `Session.changes()`: concurrent increments
    of one key all count; refused (`LimitExceeded`) when it would take the
    number past `limit`."""

    by: int
    limit: int | None = None


class LimitExceeded(HTTPException):
    """422: an increment would take a key past its limit. Nothing of the
    request's session changes is saved."""

    def __init__(self, limit: int) -> None:
        # 422 (its `status` name changed between Starlette versions).
        super().__init__(422, f"At most {limit} allowed")


def apply_changes(data: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`data` with `changes` (from `Session.changes()`) applied."""
    merged = dict(data)
    for key, value in changes.items():
        if value is DELETED:
            merged.pop(key, None)
        elif isinstance(value, Increment):
            merged[key] = merged.get(key, 0) + value.by
            if value.limit is not None and merged[key] > value.limit:
                raise LimitExceeded(value.limit)
        else:
            merged[key] = value
    return merged


def data_size(data: dict[str, Any]) -> int:
    """Bytes the data takes as stored (compact JSON)."""
    return len(json.dumps(data, separators=(",", ":")).encode())


def new_token() -> str:
    """A session id: 256 bits from the operating system's CSPRNG."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Session(MutableMapping[str, Any]):
    """The session of one request, loaded from the store when a route asks.

    Reading costs nothing beyond that one load; writing marks the session
    modified, and the unit of work (`sessions.deps.get_session`) saves it
    once, just before the database transaction commits. Assign a value again
    after changing it in place: changes inside a nested list or dict are not
    tracked. Concurrent requests on one session merge key by key: changes to
    different keys are all kept, and for one key the last save wins, except
    for `increment()`, whose deltas all add up.
    """

    def __init__(self) -> None:
        # The stored session, as loaded; None for a new session.
        self.state: SessionState | None = None
        self.data: dict[str, Any] = {}
        # The id and handle the session moves to when saved (see `cycle_id`).
        self.next_token: str | None = None
        self.next_handle: str | None = None
        self.modified = False
        # Keys this request set or deleted: only these are saved, merged onto
        # the data as stored then, so concurrent requests that change other
        # keys of the same session keep their changes.
        self.changed: set[str] = set()
        # Of those, the keys changed only by `increment()`, with their sum,
        # and the limits given there.
        self.deltas: dict[str, int] = {}
        self.limits: dict[str, int] = {}
        self.destroyed = False

    def attach(self, state: SessionState | None) -> None:
        """Install what the store holds for this request's token."""
        self.state = state
        if state is not None:
            self.data = dict(state.data)

    @property
    def handle(self) -> str | None:
        """The public name of the session (never its secret id)."""
        if self.next_handle is not None:
            return self.next_handle
        return self.state.handle if self.state is not None else None

    def cycle_id(self) -> None:
        """Move the session to a new id; the old id dies when it is saved."""
        self.next_token = self.next_handle = None
        self.pending_id()
        self.modified = True

    def pending_id(self) -> tuple[str, str]:
        """The (token, handle) the session moves to when saved, chosen on first ask."""
        if self.next_token is None or self.next_handle is None:
            self.next_token, self.next_handle = new_token(), secrets.token_urlsafe(12)
        return self.next_token, self.next_handle

    def destroy(self) -> None:
        """Delete the session from the store and expire the client's cookie."""
        self.destroyed = True
        self.data = {}

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.changed.add(key)
        self.deltas.pop(key, None)
        self.modified = True

    def __delitem__(self, key: str) -> None:
        del self.data[key]
        self.changed.add(key)
        self.deltas.pop(key, None)
        self.modified = True

    def increment(self, key: str, by: int = 1, limit: int | None = None) -> int:
        """Add `by` to the number under `key` (0 when missing); returns the new
        value as this request sees it. Saved as a delta, applied to the value
        as stored at save time: parallel requests' increments all count.

        With a `limit`, `LimitExceeded` is raised here when the value this
        request sees would pass it, and by the save when the value stored
        then would: parallel increments cannot pass it either."""
        value: int = self.data.get(key, 0) + by
        if limit is not None:
            if value > limit:
                raise LimitExceeded(limit)
            self.limits[key] = limit
        self.data[key] = value
        if key not in self.changed or key in self.deltas:
            self.deltas[key] = self.deltas.get(key, 0) + by
        self.changed.add(key)
        self.modified = True
        return value

    def changes(self) -> dict[str, Any]:
        """The keys this request changed: set (with their values), deleted
        (`DELETED`) or incremented (`Increment`)."""
        return {
            key: Increment(self.deltas[key], self.limits.get(key))
            if key in self.deltas
            else self.data.get(key, DELETED)
            for key in self.changed
        }

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)
