"""Register, get and refresh bearer tokens, log out."""

import hmac
import secrets
import time
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Response, status
from fastapi.responses import JSONResponse
from fastapi.security import OAuth2PasswordRequestForm
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from svc_sync_redis_postgres_jwt_ex.auth.accounts import change_password
from svc_sync_redis_postgres_jwt_ex.auth.deps import CurrentUser
from svc_sync_redis_postgres_jwt_ex.auth.limits import LoginLimits
from svc_sync_redis_postgres_jwt_ex.auth.passwords import hash_password, verify_password
from svc_sync_redis_postgres_jwt_ex.auth.schemas import (
    Credentials,
    PasswordChange,
    RefreshIn,
    TokenPair,
    UserOut,
)
from svc_sync_redis_postgres_jwt_ex.auth.tokens import create_access_token
from svc_sync_redis_postgres_jwt_ex.config import Settings, SettingsDep
from svc_sync_redis_postgres_jwt_ex.db import DbSession
from svc_sync_redis_postgres_jwt_ex.models import User
from svc_sync_redis_postgres_jwt_ex.responses import errors
from svc_sync_redis_postgres_jwt_ex.sessions.deps import CurrentSession, SessionStoreDep
from svc_sync_redis_postgres_jwt_ex.sessions.session import Session, hash_token

router = APIRouter(prefix="/auth", tags=["auth"], responses=errors(401, 403, 409, 429))


def refused(detail: str) -> JSONResponse:
    """A 401 that still commits the request's transaction (a revocation, or a
    failed login counted by `LoginLimits`)."""
    return JSONResponse(
        {"detail": detail},
        status.HTTP_401_UNAUTHORIZED,
        headers={"WWW-Authenticate": "Bearer"},
    )


@router.post("/register", status_code=status.HTTP_201_CREATED)
def register(body: Credentials, db: DbSession) -> UserOut:
    user = User(email=body.email.lower(), password_hash=hash_password(body.password))
    db.add(user)
    try:
        db.flush()
    except IntegrityError:
        raise HTTPException(status.HTTP_409_CONFLICT, "Email already registered") from None
    return UserOut(id=user.id, email=user.email)


def issue_tokens(session: Session, user_id: int, sid: str, settings: Settings) -> TokenPair:
    """A new access token for the session `sid`, and a new refresh token that
    replaces the previous one (only its hash is stored)."""
    secret = secrets.token_urlsafe(32)
    session.refresh_hash = hash_token(secret)
    session.modified = True
    return TokenPair(
        access_token=create_access_token(settings, user_id, sid),
        refresh_token=f"{sid}.{secret}",
        expires_in=settings.access_token_lifetime,
    )


@router.post("/token", response_model=TokenPair)
def token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    db: DbSession,
    session: CurrentSession,
    settings: SettingsDep,
    limits: LoginLimits,
) -> TokenPair | JSONResponse:
    """OAuth2 password flow: `username` is the email. Starts a login session."""
    limits.check(form.username)
    user = db.scalar(select(User).where(User.email == form.username.lower()))
    password_hash = user.password_hash if user is not None and user.is_active else None
    if user is None or not verify_password(form.password, password_hash):
        limits.failed(form.username)
        return refused("Invalid email or password")
    limits.succeeded(form.username)
    session.login(user.id)
    _, sid = session.pending_id()
    return issue_tokens(session, user.id, sid, settings)


@router.post("/refresh", response_model=TokenPair)
def refresh(
    body: RefreshIn,
    store: SessionStoreDep,
    session: CurrentSession,
    settings: SettingsDep,
) -> TokenPair | JSONResponse:
    """Trade a refresh token for a new pair; the old refresh token dies.

    A refresh token that was already used means two parties hold it (one
    of them a thief): the whole login session is revoked.
    """
    sid, _, secret = body.refresh_token.partition(".")
    state = store.get_by_handle(sid, time.time()) if secret else None
    if state is None or state.user_id is None:
        return refused("Invalid refresh token")
    session.attach(state)
    if not hmac.compare_digest(hash_token(secret), state.refresh_hash or ""):
        session.destroy()
        return refused("Refresh token reused: the session is revoked")
    return issue_tokens(session, state.user_id, state.handle, settings)


@router.get("/me")
def me(user: CurrentUser) -> UserOut:
    return UserOut(id=user.id, email=user.email)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
def logout(_user: CurrentUser, session: CurrentSession) -> Response:
    session.destroy()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/password", response_model=TokenPair)
def password(
    body: PasswordChange,
    user: CurrentUser,
    session: CurrentSession,
    store: SessionStoreDep,
    limits: LoginLimits,
    settings: SettingsDep,
) -> TokenPair | JSONResponse:
    """Change the password: every other session of the user ends, and this
    one goes on under a new id, with new tokens (the old ones stop working)."""
    limits.check(user.email)
    if not verify_password(body.current_password, user.password_hash):
        limits.failed(user.email)
        # 403, not 401: the session is fine. The transaction commits (counted).
        return JSONResponse({"detail": "Wrong current password"}, status.HTTP_403_FORBIDDEN)
    change_password(user, body.new_password, store)
    session.login(user.id)
    _, sid = session.pending_id()
    return issue_tokens(session, user.id, sid, settings)
