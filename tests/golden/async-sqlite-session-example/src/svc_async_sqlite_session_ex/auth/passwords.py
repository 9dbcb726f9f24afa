"""Password hashing with Argon2 (pwdlib's recommended settings)."""

from anyio import to_thread
from pwdlib import PasswordHash

_hasher = PasswordHash.recommended()
# Verified against when the email is unknown, so that a wrong email and a
# wrong password take the same time and cannot be told apart.
_DUMMY_HASH = _hasher.hash("an unguessable placeholder password")

# Argon2 takes tens of milliseconds of CPU: run it off the event loop.


async def hash_password(password: str) -> str:
    return await to_thread.run_sync(_hasher.hash, password)


async def verify_password(password: str, password_hash: str | None) -> bool:
    """Check a password; with no hash (unknown user), spend the same time."""
    valid = await to_thread.run_sync(_hasher.verify, password, password_hash or _DUMMY_HASH)
    return valid and password_hash is not None
