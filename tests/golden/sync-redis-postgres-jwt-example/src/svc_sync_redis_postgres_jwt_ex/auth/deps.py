"""`CurrentUser`: the user of the login session named by the bearer token."""

from typing import Annotated, NoReturn

from fastapi import Depends, HTTPException, status

from ..db import DbSession, Refused
from ..models import User
from ..sessions.deps import CurrentSession
from ..sessions.session import Session
from .users import get_user

UNAUTHORIZED = HTTPException(
    status.HTTP_401_UNAUTHORIZED, "Not authenticated", headers={"WWW-Authenticate": "Bearer"}
)


def end_stale(session: Session) -> NoReturn:
    """401 for a session older than its user's last change of credentials
    (`auth.accounts.revoke_credentials`): saved after it by a login that
    checked the old credentials, or by a request in flight. The session is
    deleted on the way out, and with it its refresh token."""
    session.destroy()
    raise Refused(UNAUTHORIZED.status_code, UNAUTHORIZED.detail, UNAUTHORIZED.headers)


def get_current_user(
    session: CurrentSession,
    db: DbSession,
) -> User:
    """The user of a live login session; 401 (with `WWW-Authenticate`) otherwise."""
    if session.user_id is None:
        raise UNAUTHORIZED

    user = get_user(db, session.user_id)
    if user is None or not user.is_active:
        raise UNAUTHORIZED
    if session.credential_epoch < user.credential_epoch:
        end_stale(session)
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]
