"""Password hashing with Argon2 (pwdlib's recommended settings), a few at a time.

Each hash takes about 0.2 s of CPU and 64 MiB of memory. Unbounded, a flood
of logins or registrations would take every core and gigabytes, and every
other request would wait; so each process runs at most
`PASSWORD_HASH_CONCURRENCY` at once. A request that finds them all taken waits
up to `PASSWORD_HASH_WAIT` seconds, then gets 503 with `Retry-After`.
"""

import contextlib
import math
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from fastapi import HTTPException, status
from pwdlib import PasswordHash

from ..config import Settings

_hasher = PasswordHash.recommended()
# Verified against when the email is unknown, so that a wrong email and a
# wrong password take the same time and cannot be told apart.
_DUMMY_HASH = _hasher.hash("an unguessable placeholder password")

T = TypeVar("T")
# The niceness of the hashing threads: the CPU goes to serving requests first.
HASHING_NICENESS = 10


def _lower_priority() -> None:
    """Lower this hashing thread's CPU priority (on Linux, `setpriority` on a
    thread id sets that thread's only); Argon2's lane threads inherit it."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASHING_NICENESS)


class HashingSlots:
    """The process's permits to hash.

    Hand-written: a semaphore with a bounded wait is all it takes (rate-limit
    libraries count requests over time; they do not bound concurrency).
    """

    def __init__(self) -> None:
        self.configure(1, 1.0)

    def configure(self, concurrency: int, wait: float) -> None:
        # Taken in the worker thread that runs the route.
        self.semaphore = threading.BoundedSemaphore(concurrency)
        self.wait = wait
        # Threads of their own, at a lower priority: a hash never delays the
        # event loop or another request's thread for the CPU.
        self.threads = ThreadPoolExecutor(
            concurrency, thread_name_prefix="password-hash", initializer=_lower_priority
        )

    def busy(self) -> "HashingBusy":
        return HashingBusy(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "Too many password checks at once: try again shortly",
            headers={"Retry-After": str(max(1, math.ceil(self.wait)))},
        )


class HashingBusy(HTTPException):
    """503: no hashing turn came in time; the password was not checked."""


_slots = HashingSlots()


def limit_hashing(settings: Settings) -> None:
    """Set this process's hashing permits (called by `app.create_app`)."""
    _slots.configure(settings.password_hash_concurrency, settings.password_hash_wait)


def _run(slots: HashingSlots, work: Callable[[], T]) -> T:
    """Run `work` in a hashing thread once a permit is free (the route's worker
    thread waits for it)."""
    semaphore = slots.semaphore
    if not semaphore.acquire(timeout=slots.wait):
        raise slots.busy()
    try:
        return slots.threads.submit(work).result()
    finally:
        semaphore.release()


def hash_password(password: str) -> str:
    return _run(_slots, lambda: _hasher.hash(password))


def verify_password(password: str, password_hash: str | None) -> bool:
    """Check a password; with no hash (unknown user), spend the same time."""
    valid = _run(_slots, lambda: _hasher.verify(password, password_hash or _DUMMY_HASH))
    return valid and password_hash is not None
