"""Failed-login limits, per account and per client address.

The counts live in the session store, so every worker process shares them.
Windows are fixed (`LOGIN_ATTEMPTS_WINDOW` seconds from the first attempt):
once a limit is used up, logins answer 429 with `Retry-After` until the
window ends, even with the right password, and then work again; a
successful login clears its account's count. Nobody is locked out for good.

Every attempt is counted before its password is checked, by one atomic
increment that returns the new count: of N parallel guesses, at most the
limit get a password check, the rest 429. The count is written at once,
on its own: a request that fails later cannot take it back (a success
gives it back).
"""

import hashlib
import logging
import math
import time
from typing import Annotated, NoReturn, Protocol

from fastapi import Depends, HTTPException, Request, status

from ..config import Settings, get_settings
from ..sessions.deps import SessionStoreDep
from .accounts import normalize_email

logger = logging.getLogger(__name__)


class Counters(Protocol):
    """What a session store provides for rate limits."""

    async def hit(self, key: str, window: int, now: float) -> tuple[int, float]: ...

    async def undo(self, key: str, now: float) -> None: ...

    async def clear(self, key: str) -> None: ...


def _key(kind: str, value: str) -> str:
    """A store key of bounded length (hashed: an address forwarded by a
    proxy, or an email, can be any length), revealing no email address."""
    return f"login:{kind}:" + hashlib.sha256(value.encode()).hexdigest()[:32]


def _refuse(resets_at: float, now: float) -> NoReturn:
    raise HTTPException(
        status.HTTP_429_TOO_MANY_REQUESTS,
        "Too many failed logins: try again later",
        headers={"Retry-After": str(max(1, math.ceil(resets_at - now)))},
    )


class LoginLimiter:
    def __init__(self, counters: Counters, settings: Settings, client: str) -> None:
        self.counters = counters
        self.window = settings.login_attempts_window
        self.per_account = settings.login_attempts_per_account
        self.per_client = settings.login_attempts_per_client
        self.client_key = _key("client", client)

    async def reserve(self, email: str) -> None:
        """Count one attempt on `email`'s account and on this client before
        the password is checked: 429 when either has used up its limit.

        `email` as the client sent it: it is keyed in the form the user
        lookup uses (`normalize_email`), so no variant has a count of its own.
        """
        now = time.time()
        account_key = _key("account", normalize_email(email))
        hits, resets_at = await self.counters.hit(account_key, self.window, now)
        if hits > self.per_account:
            _refuse(resets_at, now)
        if hits == self.per_account:
            logger.warning("failed-login limit reached: %s", account_key)
        hits, resets_at = await self.counters.hit(self.client_key, self.window, now)
        if hits > self.per_client:
            # Refused before any check: the account's attempt did not happen.
            await self.counters.undo(account_key, now)
            _refuse(resets_at, now)
        if hits == self.per_client:
            logger.warning("failed-login limit reached: %s", self.client_key)

    async def succeeded(self, email: str) -> None:
        """The password was right: the account's count starts again, and this
        client's attempt is given back (only failures count against it)."""
        await self.counters.clear(_key("account", normalize_email(email)))
        await self.counters.undo(self.client_key, time.time())


async def get_login_limiter(request: Request, store: SessionStoreDep) -> LoginLimiter:
    """Behind a proxy, run uvicorn with `--proxy-headers` and `--forwarded-allow-ips`
    so that the client address is the real client's, not the proxy's (then
    taken from `X-Forwarded-For`: any text, of any length; it is hashed)."""
    client = request.client.host if request.client is not None else "unknown"
    return LoginLimiter(store, get_settings(request), client)


LoginLimits = Annotated[LoginLimiter, Depends(get_login_limiter)]
