"""`CurrentUser`: the logged-in user, with CSRF checked on unsafe methods."""

import hmac
from typing import Annotated, NoReturn

from fastapi import Depends, HTTPException, Request, status

from ..db import DbSession, Refused
from ..models import User
from ..sessions.deps import CurrentSession
from ..sessions.session import Session
from ..sessions.store import request_store

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def not_authenticated(kind: type[HTTPException] = HTTPException) -> HTTPException:
    """A new 401: each refusal raises its own (a raised exception keeps the
    frames of the request that raised it, so one shared instance would hold
    on to the last refused request)."""
    return kind(status.HTTP_401_UNAUTHORIZED, "Not authenticated")


def end_stale(session: Session) -> NoReturn:
    """401 for a session older than its user's last change of credentials
    (`auth.accounts.revoke_credentials`): saved after it by a login that
    checked the old credentials, or by a request in flight. The session is
    deleted on the way out, and the client told to forget its cookie."""
    session.destroy()
    raise not_authenticated(Refused)


async def get_current_user(
    request: Request,
    session: CurrentSession,
    db: DbSession,
) -> User:
    """The session's user; 401 without a live login, 403 on a missing or wrong
    `X-CSRF-Token` for a state-changing request (synchronizer token)."""
    if session.user_id is None:
        raise not_authenticated()
    if request.method not in SAFE_METHODS:
        sent = request.headers.get("x-csrf-token", "")
        if not hmac.compare_digest(sent.encode(), session.csrf_token.encode()):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "Missing or invalid CSRF token")

    user = request_store(request, db).loaded_user(session.user_id)
    if user is None or not user.is_active:
        raise not_authenticated()
    if session.credential_epoch < user.credential_epoch:
        end_stale(session)
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]
