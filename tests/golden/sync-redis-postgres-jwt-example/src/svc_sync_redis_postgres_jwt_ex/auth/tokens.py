"""Access tokens: short-lived JWTs (PyJWT) that name a server-side session.

The algorithm is fixed here, never taken from the token, so `alg: none` and
algorithm confusion are refused. The first `SECRET_KEY` signs; the `kid`
header picks the verifying key among all of them, so rotating keys logs
nobody out.
"""

import hashlib
import secrets
import time
from dataclasses import dataclass

import jwt

from svc_sync_redis_postgres_jwt_ex.config import Settings

ALGORITHM = "HS256"


@dataclass(frozen=True)
class AccessClaims:
    user_id: int
    sid: str


def key_id(key: str) -> str:
    """A public name for a signing key (a prefix of its SHA-256)."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def create_access_token(settings: Settings, user_id: int, sid: str) -> str:
    now = int(time.time())
    key = settings.secret_key[0]
    claims = {
        "sub": str(user_id),
        "sid": sid,
        "typ": "access",
        "iat": now,
        "nbf": now,
        "exp": now + settings.access_token_lifetime,
        "jti": secrets.token_urlsafe(16),
    }
    return jwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": key_id(key)})


def decode_access_token(token: str, settings: Settings) -> AccessClaims | None:
    """The claims of a valid, unexpired access token signed by one of our keys."""
    try:
        kid = jwt.get_unverified_header(token).get("kid")
        key = next((key for key in settings.secret_key if key_id(key) == kid), None)
        if key is None:
            return None
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            options={"require": ["sub", "sid", "typ", "iat", "nbf", "exp", "jti"]},
        )
        if claims["typ"] != "access":
            return None
        return AccessClaims(user_id=int(claims["sub"]), sid=str(claims["sid"]))
    except (jwt.PyJWTError, ValueError):
        return None
