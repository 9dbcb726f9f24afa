"""Get and refresh bearer tokens, change the password; with `account_routes`,
the routes under /auth."""

import hmac
import time
from typing import Annotated

from fastapi import APIRouter, Form, status
from fastapi.responses import JSONResponse

from ..config import Settings, SettingsDep
from ..db import DbSession
from ..responses import errors
from ..sessions.deps import CurrentSession, SessionStoreDep, UserSessionsDep
from ..sessions.session import SECOND_FACTOR, Session, hash_token
from . import account_routes
from .accounts import change_password, normalize_email, unverified_email
from .deps import CurrentUser
from .limits import LoginLimits
from .mfa import accept_code, waiting_user
from .passwords import HashingBusy, verify_password
from .schemas import (
    MfaChallenge,
    MfaTokenIn,
    PasswordChange,
    RefreshIn,
    TokenForm,
    TokenPair,
)
from .tokens import (
    create_access_token,
    create_refresh_token,
    read_refresh_token,
)
from .totp import PENDING_LOGIN_LIFETIME
from .users import end_reads, find_user, get_user

router = APIRouter(prefix="/auth", tags=["auth"], responses=errors(401, 403, 409, 429))
router.include_router(account_routes.router)


def refused(detail: str) -> JSONResponse:
    """A 401 that still commits the request's transaction (a revocation)."""
    return JSONResponse(
        {"detail": detail},
        status.HTTP_401_UNAUTHORIZED,
        headers={"WWW-Authenticate": "Bearer"},
    )


def token_pair(settings: Settings, user_id: int, sid: str, refresh_token: str) -> TokenPair:
    return TokenPair(
        access_token=create_access_token(settings, user_id, sid),
        refresh_token=refresh_token,
        expires_in=settings.access_token_lifetime,
    )


def issue_tokens(session: Session, user_id: int, sid: str, settings: Settings) -> TokenPair:
    """A new access token for the session `sid`, and a new refresh token that
    replaces the previous one (only its hash is stored) when the session is saved."""
    refresh_token, session.refresh_hash = create_refresh_token(settings, sid)
    session.modified = True
    return token_pair(settings, user_id, sid, refresh_token)


@router.post("/token", response_model=TokenPair | MfaChallenge)
def token(
    form: Annotated[TokenForm, Form()],
    db: DbSession,
    session: CurrentSession,
    settings: SettingsDep,
    limits: LoginLimits,
) -> TokenPair | MfaChallenge | JSONResponse:
    """OAuth2 password flow: `username` is the email. Starts a login session.

    With a second factor active, no tokens yet: an `mfa_token` that names
    the login waiting for its code (`POST /auth/token/mfa`), for
    `PENDING_LOGIN_LIFETIME` seconds.
    """
    limits.reserve(form.username)
    user = find_user(db, normalize_email(form.username))
    password_hash = user.password_hash if user is not None and user.is_active else None
    # No pooled connection is held through the hash.
    end_reads(db)
    # Checked whether or not the user exists (against a dummy hash if not):
    # an unknown email takes as long as a wrong password.
    try:
        valid = verify_password(form.password, password_hash)
    except HashingBusy:
        limits.not_checked(form.username)
        raise
    if user is None or not valid:
        return refused("Invalid email or password")
    limits.succeeded(form.username)
    if settings.require_verified_email and not user.email_verified:
        return unverified_email()
    if user.totp_secret is not None:
        until = time.time() + PENDING_LOGIN_LIFETIME
        session.await_second_factor(user.id, until, user.credential_epoch)
        mfa_token, _ = session.pending_id()
        return MfaChallenge(mfa_token=mfa_token)
    session.login(user.id, user.credential_epoch)
    _, sid = session.pending_id()
    return issue_tokens(session, user.id, sid, settings)


@router.post("/token/mfa", response_model=TokenPair)
def token_second_factor(
    body: MfaTokenIn,
    db: DbSession,
    store: SessionStoreDep,
    session: CurrentSession,
    settings: SettingsDep,
    limits: LoginLimits,
) -> TokenPair | JSONResponse:
    """The second step of a login with a second factor: the `mfa_token` of
    `POST /auth/token` and a TOTP code or a recovery code, each accepted
    once. The waiting login becomes a login session under a new id: the
    `mfa_token` works for one pair of tokens."""
    state = store.get(hash_token(body.mfa_token), time.time())
    if state is None:
        return refused("Invalid or expired mfa_token: log in again")
    session.attach(state)
    user = waiting_user(session, db)
    if user is None:
        return refused("Invalid or expired mfa_token: log in again")
    if not accept_code(user, body.code, limits, db, settings):
        return refused("Wrong code")
    del session[SECOND_FACTOR]
    session.login(user.id, user.credential_epoch)
    _, sid = session.pending_id()
    return issue_tokens(session, user.id, sid, settings)


@router.post("/refresh", response_model=TokenPair)
def refresh(
    body: RefreshIn,
    db: DbSession,
    store: SessionStoreDep,
    session: CurrentSession,
    settings: SettingsDep,
) -> TokenPair | JSONResponse:
    """Trade a refresh token for a new pair; the old refresh token dies.

    - The current token: a new pair, if the user still exists and is active
      and the login session is not older than the user's last change of
      credentials (otherwise 401, and the login session is revoked).
    - A token this service issued and has since rotated (its MAC verifies,
      its hash is no longer the stored one): two parties hold it, one of
      them perhaps a thief, so the whole login session is revoked (401).
    - Anything else, such as a guessed secret on a handle read from an
      access token: 401, and nothing is revoked.

    The rotation is a compare-and-set on the stored hash, so of concurrent
    refreshes with one token exactly one wins. The others presented a token
    that is retired by then, which is reuse: they revoke the login session,
    the winner's new tokens with it. Clients must not refresh in parallel.
    """
    presented = read_refresh_token(body.refresh_token, settings)
    state = store.get_by_handle(presented.handle, time.time()) if presented else None
    if presented is None or state is None or state.user_id is None:
        return refused("Invalid refresh token")
    current = state.refresh_hash
    if current is None or not hmac.compare_digest(hash_token(presented.secret), current):
        if not presented.signed:
            return refused("Invalid refresh token")
        session.attach(state)
        session.destroy()
        return refused("Refresh token reused: the session is revoked")
    session.attach(state)
    user = get_user(db, state.user_id)
    if user is None or not user.is_active or state.credential_epoch < user.credential_epoch:
        # Disabled or deleted other than by `disable_user`, which ends the
        # sessions; or saved after `revoke_credentials` by a login that
        # checked the credentials before it.
        session.destroy()
        return refused("Invalid refresh token")
    refresh_token, refresh_hash = create_refresh_token(settings, state.handle)
    if not store.replace_refresh_hash(state.id, current, refresh_hash):
        # A concurrent refresh with the same token rotated it first: reuse.
        session.destroy()
        return refused("Refresh token reused: the session is revoked")
    # Stored by the compare-and-set: saving the session only extends its expiry.
    session.refresh_hash = state.refresh_hash = refresh_hash
    session.modified = True
    return token_pair(settings, user.id, state.handle, refresh_token)


@router.post("/password", response_model=TokenPair)
def password(
    body: PasswordChange,
    user: CurrentUser,
    session: CurrentSession,
    sessions: UserSessionsDep,
    limits: LoginLimits,
    db: DbSession,
    settings: SettingsDep,
) -> TokenPair | JSONResponse:
    """Change the password: every other session of the user ends, and this
    one goes on under a new id, with new tokens (the old ones stop working)."""
    limits.reserve(user.email)
    end_reads(db)
    try:
        valid = verify_password(body.current_password, user.password_hash)
    except HashingBusy:
        limits.not_checked(user.email)
        raise
    if not valid:
        # 403, not 401: the session is fine.
        return JSONResponse({"detail": "Wrong current password"}, status.HTTP_403_FORBIDDEN)
    limits.succeeded(user.email)
    epoch = change_password(user, body.new_password, sessions, db)
    session.login(user.id, epoch)
    _, sid = session.pending_id()
    return issue_tokens(session, user.id, sid, settings)
