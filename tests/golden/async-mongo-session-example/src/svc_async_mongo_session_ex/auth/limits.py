"""Failed-login limits, per account and per client address.

The counts live in the session store, so every worker process shares them.
Windows are fixed (`LOGIN_ATTEMPTS_WINDOW` seconds from the first failure):
once a limit is reached, logins answer 429 with `Retry-After` until the
window ends, even with the right password, and then work again; a
successful login clears its account's count. Nobody is locked out for good.
"""

import hashlib
import logging
import math
import time
from typing import Annotated, Protocol

from fastapi import Depends, HTTPException, Request, status

from svc_async_mongo_session_ex.config import Settings, get_settings
from svc_async_mongo_session_ex.sessions.deps import SessionStoreDep

logger = logging.getLogger(__name__)


class Counters(Protocol):
    """What a session store provides for rate limits."""

    async def hit(self, key: str, window: int, now: float) -> int: ...

    async def count(self, key: str, now: float) -> tuple[int, float]: ...

    async def clear(self, key: str) -> None: ...


class LoginLimiter:
    def __init__(self, counters: Counters, settings: Settings, client: str) -> None:
        self.counters = counters
        self.window = settings.login_attempts_window
        self.per_account = settings.login_attempts_per_account
        self.per_client = settings.login_attempts_per_client
        self.client_key = f"login:client:{client}"

    def _account_key(self, email: str) -> str:
        # Hashed: keys stay short, and the store holds no email addresses.
        return "login:account:" + hashlib.sha256(email.lower().encode()).hexdigest()[:32]

    def _limits(self, email: str) -> list[tuple[str, int]]:
        return [(self._account_key(email), self.per_account), (self.client_key, self.per_client)]

    async def check(self, email: str) -> None:
        """429 while the account or this client has used up its failures."""
        now = time.time()
        for key, limit in self._limits(email):
            hits, resets_at = await self.counters.count(key, now)
            if hits >= limit:
                raise HTTPException(
                    status.HTTP_429_TOO_MANY_REQUESTS,
                    "Too many failed logins: try again later",
                    headers={"Retry-After": str(max(1, math.ceil(resets_at - now)))},
                )

    async def failed(self, email: str) -> None:
        now = time.time()
        for key, limit in self._limits(email):
            if await self.counters.hit(key, self.window, now) == limit:
                logger.warning("failed-login limit reached: %s", key)

    async def succeeded(self, email: str) -> None:
        await self.counters.clear(self._account_key(email))


async def get_login_limiter(request: Request, store: SessionStoreDep) -> LoginLimiter:
    """Behind a proxy, run uvicorn with `--proxy-headers` and `--forwarded-allow-ips`
    so that the client address is the real client's, not the proxy's."""
    client = request.client.host if request.client is not None else "unknown"
    return LoginLimiter(store, get_settings(request), client)


LoginLimits = Annotated[LoginLimiter, Depends(get_login_limiter)]
