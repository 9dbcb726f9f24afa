"""`CurrentUser`: the user of the login session named by the bearer token."""

from typing import Annotated, NoReturn

from fastapi import Depends, HTTPException, status

from ..db import DbSession, Refused
from ..models import User
from ..sessions.deps import CurrentSession
from ..sessions.session import Session
from .users import get_user


def not_authenticated(kind: type[HTTPException] = HTTPException) -> HTTPException:
    """A new 401: each refusal raises its own (a raised exception keeps the
    frames of the request that raised it, so one shared instance would hold
    on to the last refused request)."""
    return kind(status.HTTP_401_UNAUTHORIZED, "Not authenticated", {"WWW-Authenticate": "Bearer"})


def end_stale(session: Session) -> NoReturn:
    """401 for a session older than its user's last change of credentials
    (`auth.accounts.revoke_credentials`): saved after it by a login that
    checked the old credentials, or by a request in flight. The session is
    deleted on the way out, and with it its refresh token."""
    session.destroy()
    raise not_authenticated(Refused)


def get_current_user(
    session: CurrentSession,
    db: DbSession,
) -> User:
    """The user of a live login session; 401 (with `WWW-Authenticate`) otherwise."""
    if session.user_id is None:
        raise not_authenticated()

    user = get_user(db, session.user_id)
    if user is None or not user.is_active:
        raise not_authenticated()
    if session.credential_epoch < user.credential_epoch:
        end_stale(session)
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]
