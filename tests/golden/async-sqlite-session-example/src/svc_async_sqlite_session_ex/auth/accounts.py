"""Account changes that must end the user's sessions."""

from svc_async_sqlite_session_ex.auth.passwords import hash_password
from svc_async_sqlite_session_ex.models import User
from svc_async_sqlite_session_ex.sessions.sql_store import SessionStore


async def change_password(user: User, new_password: str, store: SessionStore) -> None:
    """Set a new password and delete every session of the user: whoever held
    one, or knew the old password, is out."""
    user.password_hash = await hash_password(new_password)
    await store.delete_for_user(user.id)


async def disable_user(user: User, store: SessionStore) -> None:
    """Lock the user out (for admin routes and scripts): logins fail, and
    every session is deleted now, so requests that carry one get 401."""
    user.is_active = False
    await store.delete_for_user(user.id)
