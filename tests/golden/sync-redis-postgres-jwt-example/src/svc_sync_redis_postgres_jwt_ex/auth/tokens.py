"""Access tokens: short-lived JWTs (PyJWT) that name a server-side session;
refresh tokens: opaque, rotated on every use, and signed so that a token
this service issued can be told from a guess.

The algorithm is fixed here, never taken from the token, so `alg: none` and
algorithm confusion are refused. The first `SECRET_KEY` signs; the `kid`
header picks the verifying key among all of them, so rotating keys logs
nobody out.
"""

import hashlib
import hmac
import secrets
import time
from base64 import urlsafe_b64encode
from dataclasses import dataclass

import jwt

from ..config import Settings
from ..sessions.session import hash_token

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


@dataclass(frozen=True)
class RefreshToken:
    """A refresh token as presented: `<handle>.<nonce>.<mac>`."""

    # The login session's public handle (the access token's `sid` claim).
    handle: str
    # `<nonce>.<mac>`: the store keeps only its SHA-256 (`hash_token`).
    secret: str
    # The MAC verifies with one of the `SECRET_KEY`s: this service issued it.
    signed: bool


def _refresh_mac(key: str, handle: str, nonce: str) -> str:
    # The "refresh:" prefix keeps these MACs apart from JWT signatures made
    # with the same key (a JWT signing input never contains ":").
    message = f"refresh:{handle}.{nonce}".encode()
    digest = hmac.digest(key.encode(), message, hashlib.sha256)
    return urlsafe_b64encode(digest).rstrip(b"=").decode()


def create_refresh_token(settings: Settings, handle: str) -> tuple[str, str]:
    """A new refresh token for the login session `handle`, and the hash to store.

    The nonce is 256 bits from `secrets`; the MAC (HMAC-SHA256 with the first
    `SECRET_KEY`) binds it to the handle. Only the current token's hash is
    stored, so the MAC is what tells a token once issued and since rotated
    (reuse: the session is revoked) from one never issued (a guess by
    someone who read the handle in an access token: refused, nothing
    revoked). Written with the standard library: it is one HMAC.
    """
    nonce = secrets.token_urlsafe(32)
    secret = f"{nonce}.{_refresh_mac(settings.secret_key[0], handle, nonce)}"
    return f"{handle}.{secret}", hash_token(secret)


def read_refresh_token(token: str, settings: Settings) -> RefreshToken | None:
    """The parts of a refresh token, and whether one of our keys signed it.

    An unsigned token is still worth comparing with the stored hash: one
    signed with a key since dropped from `SECRET_KEY`, or issued before
    refresh tokens were signed, is valid while it is the current one.
    """
    handle, _, secret = token.partition(".")
    if not (handle and secret) or not token.isascii():
        return None
    nonce, _, mac = secret.partition(".")
    signed = any(
        hmac.compare_digest(mac, _refresh_mac(key, handle, nonce)) for key in settings.secret_key
    )
    return RefreshToken(handle=handle, secret=secret, signed=signed)
