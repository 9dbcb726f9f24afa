"""`CurrentUser`: the user of the login session named by the bearer token."""

from typing import Annotated

from fastapi import Depends, HTTPException, status

from svc_sync_redis_postgres_jwt_ex.auth.users import get_user
from svc_sync_redis_postgres_jwt_ex.db import DbSession
from svc_sync_redis_postgres_jwt_ex.models import User
from svc_sync_redis_postgres_jwt_ex.sessions.deps import CurrentSession

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
