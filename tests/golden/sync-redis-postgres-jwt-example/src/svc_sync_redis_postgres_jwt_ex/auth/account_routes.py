"""The routes of every login style: register, who am I, log out."""

from fastapi import APIRouter, HTTPException, Response, status

from ..db import DbSession
from ..sessions.deps import CurrentSession
from .accounts import normalize_email
from .deps import CurrentUser
from .limits import LoginLimits
from .passwords import hash_password
from .schemas import Registration, UserOut
from .users import add_user

# Included by `auth.routes.router`, which gives them its prefix, tags and responses.
router = APIRouter()


@router.post("/register", status_code=status.HTTP_201_CREATED)
def register(body: Registration, db: DbSession, limits: LoginLimits) -> UserOut:
    """Counted per client address before the password is hashed, and hashed
    before the user is written: no pooled connection is held through the hash."""
    limits.reserve_registration()
    password_hash = hash_password(body.password)
    user = add_user(db, body.email, normalize_email(body.email), password_hash)
    if user is None:
        raise HTTPException(status.HTTP_409_CONFLICT, "Email already registered")
    return UserOut(id=user.id, email=user.email)


# The routes below do no I/O (the session and its user are loaded by then):
# `async`, so FastAPI runs them in the event loop, not in a worker thread.
@router.get("/me")
async def me(user: CurrentUser) -> UserOut:
    return UserOut(id=user.id, email=user.email)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(_user: CurrentUser, session: CurrentSession) -> Response:
    session.destroy()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
