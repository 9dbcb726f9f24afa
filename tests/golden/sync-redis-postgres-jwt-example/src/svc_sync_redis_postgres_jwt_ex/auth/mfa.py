"""The second factor (TOTP): set it up, confirm it, turn it off; and the
check of a login's code (`accept_code`), for the login routes."""

import time

from fastapi import APIRouter, Response, status
from fastapi.responses import JSONResponse

from ..config import Settings, SettingsDep
from ..db import DbSession
from ..models import User
from ..responses import Error
from ..sessions.session import Session
from .deps import CurrentUser
from .limits import LoginLimiter, LoginLimits
from .passwords import HashingBusy, verify_password
from .schemas import CodeIn, CurrentPassword, RecoveryCodes, TotpSetup
from .totp import (
    decrypt_secret,
    encrypt_secret,
    is_totp_code,
    matching_step,
    new_recovery_codes,
    new_secret,
    otpauth_uri,
    recovery_code_hash,
)
from .users import (
    end_reads,
    get_user,
    set_recovery_codes,
    set_user_field,
    use_recovery_code,
    use_time_step,
)

# Included by `auth.account_routes.router`.
router = APIRouter()


def wrong_password() -> JSONResponse:
    # 403, not 401: the token is fine.
    return JSONResponse({"detail": "Wrong current password"}, status.HTTP_403_FORBIDDEN)


def password_confirmed(
    user: User,
    password: str,
    limits: LoginLimiter,
    db: DbSession,
) -> bool:
    """Whether `password` is the user's, counted as a login is."""
    limits.reserve(user.email)
    end_reads(db)
    try:
        valid = verify_password(password, user.password_hash)
    except HashingBusy:
        limits.not_checked(user.email)
        raise
    if valid:
        limits.succeeded(user.email)
    return valid


def accept_code(
    user: User,
    code: str,
    limits: LoginLimiter,
    db: DbSession,
    settings: Settings,
) -> bool:
    """Whether `code` is the user's TOTP code of a time step later than the
    last one used, or one of the user's unused recovery codes; if so, it is
    used up. Counted per account as logins are (429 past the limits)."""
    limits.reserve_code(user.id)
    code = code.strip()
    if is_totp_code(code):
        secret = decrypt_secret(settings, user.totp_secret) if user.totp_secret else None
        step = matching_step(secret, code, time.time()) if secret is not None else None
        accepted = step is not None and use_time_step(db, user, step)
    else:
        accepted = use_recovery_code(db, user, recovery_code_hash(code))
    if accepted:
        limits.code_succeeded(user.id)
    return accepted


def waiting_user(session: Session, db: DbSession) -> User | None:
    """The user whose login waits for its code in `session`: None when there
    is none, it is too late, the user's credentials have changed since (a
    new password, a log-out everywhere), or the user is disabled or has no
    second factor any more."""
    waiting = session.waiting_login(time.time())
    if waiting is None:
        return None
    user = get_user(db, waiting[0])
    if user is None or not user.is_active or user.totp_secret is None:
        return None
    if user.credential_epoch != waiting[1]:
        return None
    return user


@router.post("/mfa/totp", response_model=TotpSetup)
def start_totp(
    body: CurrentPassword,
    user: CurrentUser,
    limits: LoginLimits,
    db: DbSession,
    settings: SettingsDep,
) -> TotpSetup | JSONResponse:
    """Set up TOTP: a new secret, for an authenticator app. It is pending
    until `POST /auth/mfa/totp/confirm` shows a code of it (a new setup
    replaces a pending one); a factor already active stays so until then."""
    if not password_confirmed(user, body.current_password, limits, db):
        return wrong_password()
    secret = new_secret()
    set_user_field(db, user, "totp_pending", encrypt_secret(settings, secret))
    return TotpSetup(secret=secret, otpauth_uri=otpauth_uri(secret, user.email))


@router.post(
    "/mfa/totp/confirm",
    response_model=RecoveryCodes,
    responses={400: {"model": Error, "description": "No setup pending, or a wrong code"}},
)
def confirm_totp(
    body: CodeIn,
    user: CurrentUser,
    limits: LoginLimits,
    db: DbSession,
    settings: SettingsDep,
) -> RecoveryCodes | JSONResponse:
    """Activate the pending secret with one of its codes; returns the
    recovery codes (shown this once: only their hashes are kept), which
    replace any earlier ones."""
    pending = decrypt_secret(settings, user.totp_pending) if user.totp_pending else None
    if pending is None:
        detail = "No TOTP setup to confirm: start one with POST /auth/mfa/totp"
        return JSONResponse({"detail": detail}, status.HTTP_400_BAD_REQUEST)
    limits.reserve_code(user.id)
    step = matching_step(pending, body.code.strip(), time.time())
    if step is None or not use_time_step(db, user, step):
        return JSONResponse({"detail": "Wrong code"}, status.HTTP_400_BAD_REQUEST)
    limits.code_succeeded(user.id)
    codes = new_recovery_codes()
    set_user_field(db, user, "totp_secret", user.totp_pending)
    set_user_field(db, user, "totp_pending", None)
    set_recovery_codes(db, user, [recovery_code_hash(code) for code in codes])
    return RecoveryCodes(recovery_codes=codes)


@router.delete("/mfa/totp", status_code=status.HTTP_204_NO_CONTENT)
def disable_totp(
    body: CurrentPassword,
    user: CurrentUser,
    limits: LoginLimits,
    db: DbSession,
) -> Response:
    """Turn the second factor off (and a pending setup, and the recovery codes)."""
    if not password_confirmed(user, body.current_password, limits, db):
        return wrong_password()
    set_user_field(db, user, "totp_secret", None)
    set_user_field(db, user, "totp_pending", None)
    set_recovery_codes(db, user, [])
    return Response(status_code=status.HTTP_204_NO_CONTENT)
