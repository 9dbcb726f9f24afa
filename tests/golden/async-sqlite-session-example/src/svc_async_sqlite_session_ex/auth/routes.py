"""Log in, change the password, and manage the user's sessions; with
`account_routes`, the routes under /auth."""

import time
from datetime import UTC, datetime

from fastapi import APIRouter, Response, status
from fastapi.responses import JSONResponse

from ..config import SettingsDep
from ..db import DbSession
from ..responses import errors
from ..sessions.deps import CurrentSession, UserSessionsDep
from ..sessions.session import SECOND_FACTOR
from . import account_routes
from .accounts import change_password, normalize_email, revoke_credentials, unverified_email
from .deps import CurrentUser
from .limits import LoginLimits
from .mfa import accept_code, waiting_user
from .passwords import HashingBusy, verify_password
from .schemas import (
    CodeIn,
    Credentials,
    LoginOut,
    MfaRequired,
    PasswordChange,
    SessionOut,
)
from .totp import PENDING_LOGIN_LIFETIME
from .users import end_reads, find_user

router = APIRouter(prefix="/auth", tags=["auth"], responses=errors(401, 403, 409, 429))
router.include_router(account_routes.router)


def refused(detail: str) -> JSONResponse:
    """A 401 returned, not raised: the request's session is still saved."""
    return JSONResponse({"detail": detail}, status.HTTP_401_UNAUTHORIZED)


@router.post("/login", response_model=LoginOut | MfaRequired)
async def login(
    body: Credentials,
    db: DbSession,
    session: CurrentSession,
    limits: LoginLimits,
    settings: SettingsDep,
) -> LoginOut | MfaRequired | JSONResponse:
    """Log in; with a second factor active, the session waits for its code
    (`POST /auth/login/mfa`) for `PENDING_LOGIN_LIFETIME` seconds, and
    grants nothing until then."""
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
    if settings.require_verified_email and not user.email_verified:
        return unverified_email()
    if user.totp_secret is not None:
        until = time.time() + PENDING_LOGIN_LIFETIME
        session.await_second_factor(user.id, until, user.credential_epoch)
        return MfaRequired()
    session.login(user.id, user.credential_epoch)
    return LoginOut(id=user.id, email=user.email, csrf_token=session.csrf_token)


@router.post("/login/mfa", response_model=LoginOut)
async def login_second_factor(
    body: CodeIn,
    db: DbSession,
    session: CurrentSession,
    limits: LoginLimits,
    settings: SettingsDep,
) -> LoginOut | JSONResponse:
    """The second step of a login with a second factor: a TOTP code or a
    recovery code, each accepted once. Like `login`, it needs no CSRF token
    (the client has none yet); cross-site requests are refused as for every
    route. The session moves to a new id, logged in."""
    user = await waiting_user(session, db)
    if user is None:
        return refused("No login waiting for a code: log in first")
    if not await accept_code(user, body.code, limits, db, settings):
        return refused("Wrong code")
    del session[SECOND_FACTOR]
    session.login(user.id, user.credential_epoch)
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
    # This session goes on under a new id that records the new epoch.
    session.credential_epoch = await change_password(user, body.new_password, sessions, db)
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
        # A session saved after a change of credentials that it predates is refused.
        if state.credential_epoch >= user.credential_epoch
    ]


@router.delete("/sessions", status_code=status.HTTP_204_NO_CONTENT)
async def logout_everywhere(
    user: CurrentUser,
    session: CurrentSession,
    sessions: UserSessionsDep,
    db: DbSession,
) -> Response:
    """End every session of the user, this one too, and any saved later by a
    login or request that began before (`revoke_credentials`)."""
    await revoke_credentials(user, sessions, db)
    session.destroy()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
