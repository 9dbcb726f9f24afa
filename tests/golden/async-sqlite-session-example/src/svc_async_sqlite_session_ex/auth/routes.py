"""Log in, change the password, and manage the user's sessions; with
`account_routes`, the routes under /auth."""

import time
from datetime import UTC, datetime

from fastapi import APIRouter, Response, status
from fastapi.responses import JSONResponse

from ..db import DbSession
from ..responses import errors
from ..sessions.deps import CurrentSession, UserSessionsDep
from . import account_routes
from .accounts import change_password, normalize_email
from .deps import CurrentUser
from .limits import LoginLimits
from .passwords import HashingBusy, verify_password
from .schemas import (
    Credentials,
    LoginOut,
    PasswordChange,
    SessionOut,
)
from .users import end_reads, find_user

router = APIRouter(prefix="/auth", tags=["auth"], responses=errors(401, 403, 409, 429))
router.include_router(account_routes.router)


def refused(detail: str) -> JSONResponse:
    """A 401 returned, not raised: the request's session is still saved."""
    return JSONResponse({"detail": detail}, status.HTTP_401_UNAUTHORIZED)


@router.post("/login", response_model=LoginOut)
async def login(
    body: Credentials, db: DbSession, session: CurrentSession, limits: LoginLimits
) -> LoginOut | JSONResponse:
    await limits.reserve(body.email)
    user = await find_user(db, normalize_email(body.email))
    password_hash = user.password_hash if user is not None and user.is_active else None
    # No pooled connection is held through the hash.
    await end_reads(db)
    # Checked whether or not the user exists (against a dummy hash if not):
    # an unknown email takes as long as a wrong password.
    try:
        valid = await verify_password(body.password, password_hash)
    except HashingBusy:
        await limits.not_checked(body.email)
        raise
    if user is None or not valid:
        return refused("Invalid email or password")
    await limits.succeeded(body.email)
    session.login(user.id)
    return LoginOut(id=user.id, email=user.email, csrf_token=session.csrf_token)


@router.post("/password", status_code=status.HTTP_204_NO_CONTENT)
async def password(
    body: PasswordChange,
    user: CurrentUser,
    session: CurrentSession,
    sessions: UserSessionsDep,
    limits: LoginLimits,
    db: DbSession,
) -> Response:
    """Change the password: every other session of the user ends, and this
    one moves to a new id (a new cookie; the CSRF token stays)."""
    await limits.reserve(user.email)
    await end_reads(db)
    try:
        valid = await verify_password(body.current_password, user.password_hash)
    except HashingBusy:
        await limits.not_checked(user.email)
        raise
    if not valid:
        # 403, not 401: the session is fine.
        return JSONResponse({"detail": "Wrong current password"}, status.HTTP_403_FORBIDDEN)
    await limits.succeeded(user.email)
    await change_password(user, body.new_password, sessions, db)
    session.cycle_id()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/sessions")
async def list_sessions(
    user: CurrentUser,
    session: CurrentSession,
    sessions: UserSessionsDep,
) -> list[SessionOut]:
    states = await sessions.list_for_user(user.id, time.time())
    return [
        SessionOut(
            id=state.handle,
            created_at=datetime.fromtimestamp(state.created_at, UTC),
            last_seen=datetime.fromtimestamp(state.last_seen, UTC),
            current=state.handle == session.handle,
        )
        for state in states
    ]


@router.delete("/sessions", status_code=status.HTTP_204_NO_CONTENT)
async def logout_everywhere(
    user: CurrentUser,
    session: CurrentSession,
    sessions: UserSessionsDep,
) -> Response:
    await sessions.delete_for_user(user.id)
    session.destroy()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
