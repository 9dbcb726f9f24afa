"""The routes of every login style: register, who am I, log out, and the
account's mails: verify the email, reset a forgotten password, change the
email; and the second factor's (`mfa`). Mails are queued in the request's
transaction (`mail/outbox.py`) and sent once it commits."""

import time

from fastapi import APIRouter, HTTPException, Response, status
from fastapi.responses import JSONResponse

from ..db import DbSession
from ..mail.outbox import OutboxDep
from ..sessions.deps import CurrentSession, UserSessionsDep
from . import mfa
from .accounts import normalize_email, reset_password
from .deps import CurrentUser
from .limits import LoginLimits
from .mails import EMAIL, RESET, VERIFY, hash_token
from .passwords import HashingBusy, hash_password, verify_password
from .schemas import (
    Accepted,
    EmailChange,
    Me,
    PasswordForgotten,
    PasswordReset,
    Registration,
    TokenIn,
    UserOut,
)
from .users import add_user, change_email, end_reads, get_user, set_user_field, take_token

# Included by `auth.routes.router`, which gives them its prefix, tags and responses.
router = APIRouter()
router.include_router(mfa.router)
INVALID_TOKEN = HTTPException(status.HTTP_400_BAD_REQUEST, "Invalid or expired link")


@router.post("/register", status_code=status.HTTP_201_CREATED)
async def register(
    body: Registration,
    db: DbSession,
    limits: LoginLimits,
    outbox: OutboxDep,
) -> UserOut:
    """Counted per client address before the password is hashed, and hashed
    before the user is written: no pooled connection is held through the hash.
    A verification link is mailed."""
    await limits.reserve_registration()
    password_hash = await hash_password(body.password)
    user = await add_user(db, body.email, normalize_email(body.email), password_hash)
    if user is None:
        raise HTTPException(status.HTTP_409_CONFLICT, "Email already registered")
    await outbox.queue("verify", user.email, user_id=user.id)
    return UserOut(id=user.id, email=user.email)


@router.post("/verify/request", status_code=status.HTTP_202_ACCEPTED)
async def request_verification(user: CurrentUser, outbox: OutboxDep) -> Accepted:
    """Mail a new verification link (the earlier one stops working)."""
    if not user.email_verified:
        await outbox.queue("verify", user.email, user_id=user.id)
    return Accepted(detail="A verification link is on its way")


@router.post("/verify", status_code=status.HTTP_204_NO_CONTENT)
async def verify(body: TokenIn, db: DbSession) -> Response:
    token = await take_token(db, hash_token(body.token), VERIFY, time.time())
    user = await get_user(db, token.user_id) if token is not None else None
    if token is None or user is None or token.new_email != user.email:
        raise INVALID_TOKEN
    await set_user_field(db, user, "email_verified", True)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/password/forgot", status_code=status.HTTP_202_ACCEPTED)
async def forgot_password(
    body: PasswordForgotten,
    limits: LoginLimits,
    outbox: OutboxDep,
) -> Accepted:
    """The same answer, after the same work, whether or not the account
    exists: the account is looked up, and its link made, by the sender."""
    await limits.reserve_password_reset(body.email)
    await outbox.queue("reset", body.email)
    return Accepted(detail="If an account has this address, a link is on its way")


@router.post("/password/reset", status_code=status.HTTP_204_NO_CONTENT)
async def reset_forgotten_password(
    body: PasswordReset,
    db: DbSession,
    sessions: UserSessionsDep,
) -> Response:
    """The new password, and every session of the user ends."""
    token = await take_token(db, hash_token(body.token), RESET, time.time())
    user = await get_user(db, token.user_id) if token is not None else None
    if user is None or not user.is_active:
        raise INVALID_TOKEN
    await reset_password(user, body.new_password, sessions, db)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/email", status_code=status.HTTP_202_ACCEPTED, response_model=Accepted)
async def change_email_request(
    body: EmailChange,
    user: CurrentUser,
    limits: LoginLimits,
    db: DbSession,
    outbox: OutboxDep,
) -> Accepted | JSONResponse:
    """A confirmation link to the new address (or, if it has an account, a
    mail saying so: the answer is the same), a notice to the old one."""
    await limits.reserve(user.email)
    await end_reads(db)
    try:
        valid = await verify_password(body.current_password, user.password_hash)
    except HashingBusy:
        await limits.not_checked(user.email)
        raise
    if not valid:
        return JSONResponse({"detail": "Wrong current password"}, status.HTTP_403_FORBIDDEN)
    await limits.succeeded(user.email)
    await outbox.queue("email_change", body.new_email, user_id=user.id)
    await outbox.queue("email_notice", user.email, new_email=body.new_email)
    return Accepted(detail="A confirmation link is on its way to the new address")


@router.post("/email/confirm", status_code=status.HTTP_204_NO_CONTENT)
async def confirm_email(body: TokenIn, db: DbSession) -> Response:
    """The new address replaces the old one, verified."""
    token = await take_token(db, hash_token(body.token), EMAIL, time.time())
    user = await get_user(db, token.user_id) if token is not None else None
    if token is None or user is None or token.new_email is None:
        raise INVALID_TOKEN
    if not await change_email(db, user, token.new_email, normalize_email(token.new_email)):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "This address has an account by now")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/me")
async def me(user: CurrentUser) -> Me:
    return Me(
        id=user.id,
        email=user.email,
        email_verified=user.email_verified,
        mfa=user.totp_secret is not None,
    )


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(_user: CurrentUser, session: CurrentSession) -> Response:
    session.destroy()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
