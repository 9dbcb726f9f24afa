"""`CurrentUser`: the user of the login session named by the bearer token."""

from typing import Annotated

from fastapi import Depends, HTTPException, status

from ..db import DbSession
from ..models import User
from ..sessions.deps import CurrentSession
from .users import get_user

UNAUTHORIZED = HTTPException(
    status.HTTP_401_UNAUTHORIZED, "Not authenticated", headers={"WWW-Authenticate": "Bearer"}
)


def get_current_user(session: CurrentSession, db: DbSession) -> User:
    """The user of a live login session; 401 (with `WWW-Authenticate`) otherwise."""
    if session.user_id is None:
        raise UNAUTHORIZED

    user = get_user(db, session.user_id)
    if user is None or not user.is_active:
        raise UNAUTHORIZED
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]
