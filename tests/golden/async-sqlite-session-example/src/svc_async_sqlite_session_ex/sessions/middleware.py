"""The transport: the session id travels in a signed, HttpOnly cookie."""

import hashlib
import hmac
from base64 import urlsafe_b64encode
from enum import Enum

from fastapi import status
from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..config import Settings
from ..cross_site import SameSite
from ..security import refuse
from .session import Session

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

# A signed token is 87 characters; anything much longer is not ours.
MAX_COOKIE_LENGTH = 128


class Change(Enum):
    """What the transport must tell the client once the session is saved."""

    NONE = "none"
    SET = "set"
    CLEAR = "clear"


class CookieSession(Session):
    """A `Session` that travels in the cookie: with the token the client
    presented, and what the cookie must say once the session is saved."""

    def __init__(self, token: str | None) -> None:
        super().__init__()
        # The (signature-checked) token the client presented, if any.
        self.token = token
        # What the transport must send, decided when the session is saved.
        self.change = Change.NONE


class TokenSigner:
    """Signs session tokens with HMAC-SHA256 so forged ids are refused before
    any store lookup. The first key signs; every key verifies (rotation).

    Written with the standard library: it is one HMAC and a compare.
    """

    def __init__(self, keys: list[str]) -> None:
        self._keys = [key.encode() for key in keys]

    def _mac(self, key: bytes, token: str) -> str:
        digest = hmac.digest(key, token.encode(), hashlib.sha256)
        return urlsafe_b64encode(digest).rstrip(b"=").decode()

    def sign(self, token: str) -> str:
        return f"{token}.{self._mac(self._keys[0], token)}"

    def unsign(self, value: str) -> str | None:
        """The token inside a signed value, or None when no key verifies it."""
        token, _, mac = value.partition(".")
        if len(token) != 43 or len(mac) != 43 or not value.isascii():
            return None
        for key in self._keys:
            if hmac.compare_digest(mac, self._mac(key, token)):
                return token
        return None


class SessionMiddleware:
    """Reads the cookie into an unloaded `Session` and writes it back when the
    session changed. No store I/O happens here: routes that never ask for the
    session cost no round trip. First, a state-changing request that another
    site made gets 403: the cookie would ride along with it (`cross_site.py`)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.signer = TokenSigner(settings.secret_key)
        # `__Host-` pins the cookie to this host, HTTPS and `Path=/`.
        self.cookie_name = "__Host-session" if settings.cookie_secure else "session"
        secure = "; Secure" if settings.cookie_secure else ""
        self.attributes = f"; Path=/; HttpOnly; SameSite=Lax{secure}"
        self.max_age = settings.session_absolute_timeout
        self.same_site = SameSite(settings.allowed_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] not in SAFE_METHODS and not self.same_site(scope, Headers(scope=scope)):
            await refuse(status.HTTP_403_FORBIDDEN, "Cross-site request refused")(
                scope, receive, send
            )
            return
        session = CookieSession(self.read_token(scope))
        scope.setdefault("state", {})["session"] = session

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start" and session.change is not Change.NONE:
                # `SecurityMiddleware` adds `Cache-Control: no-store`.
                MutableHeaders(scope=message).append("set-cookie", self.cookie(session))
            await send(message)

        await self.app(scope, receive, send_with_cookie)

    def read_token(self, scope: Scope) -> str | None:
        for name, value in scope["headers"]:
            if name == b"cookie":
                signed = cookie_parser(value.decode("latin-1")).get(self.cookie_name)
                if signed and len(signed) <= MAX_COOKIE_LENGTH:
                    return self.signer.unsign(signed)
        return None

    def cookie(self, session: CookieSession) -> str:
        if session.change is Change.SET and session.token is not None:
            value = self.signer.sign(session.token)
            return f"{self.cookie_name}={value}; Max-Age={self.max_age}{self.attributes}"
        return f"{self.cookie_name}=; Max-Age=0{self.attributes}"
