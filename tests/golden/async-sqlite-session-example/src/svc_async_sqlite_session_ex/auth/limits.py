"""Login and registration limits, per client address and per account.

The counts live beside the sessions (`sessions/auth_store.py`, `LoginCounters`),
so every worker process shares them.
Windows are fixed (`LOGIN_ATTEMPTS_WINDOW` seconds from the first attempt;
`REGISTRATION_WINDOW` for registrations): once a limit is used up, the
route answers 429 with `Retry-After` until the window ends, and then works
again. Nobody is locked out for good.

Second-factor codes are counted per account as failed logins are
(`reserve_code`), under counts of their own.

A login is counted three ways before its password is checked:

- every login of the client address, right or wrong (`LOGIN_ATTEMPTS_PER_CLIENT`):
  each one costs a password hash, so one address cannot spend them freely;
- the failures of this client address on this account (`LOGIN_ATTEMPTS_PER_ACCOUNT`):
  a guesser runs out, but only for itself, so the owner, from another address,
  still logs in;
- the failures on the account from every address together
  (`LOGIN_ATTEMPTS_PER_ACCOUNT_ALL_CLIENTS`, much higher): the limit of a
  guesser with many addresses.

Each count is one atomic increment that returns the new count: of N parallel
guesses, at most the limit get a password check, the rest 429. A count is
written at once, on its own: a request that fails later cannot take it back
(a success gives the failure counts back).

Store keys are HMACs of the address or email under a key derived from
`SECRET_KEY`: of bounded length, and they (and the log lines that name them)
reveal neither (a bare hash of an email or an IPv4 address is reversed by
hashing the candidates). Rotating the first `SECRET_KEY` starts every count again.
"""

import hashlib
import hmac
import ipaddress
import logging
import math
import time
from typing import Annotated, NoReturn

from fastapi import Depends, HTTPException, Request, status

from ..config import Settings, get_settings
from ..sessions.contract import Counters
from ..sessions.deps import CountersDep
from .accounts import normalize_email

logger = logging.getLogger(__name__)


def _keying_key(settings: Settings) -> bytes:
    """The HMAC key of limit keys, derived from the signing `SECRET_KEY`
    (a key of its own: no MAC made here is valid anywhere else)."""
    return hmac.digest(settings.secret_key[0].encode(), b"rate-limit keys", hashlib.sha256)


def _refuse(resets_at: float, now: float, detail: str) -> NoReturn:
    raise HTTPException(
        status.HTTP_429_TOO_MANY_REQUESTS,
        detail,
        headers={"Retry-After": str(max(1, math.ceil(resets_at - now)))},
    )


class LoginLimiter:
    """The limits of one request's client: logins and registrations."""

    def __init__(self, counters: Counters, settings: Settings, client: str) -> None:
        self.counters = counters
        self.settings = settings
        self.window = settings.login_attempts_window
        self._keying = _keying_key(settings)
        self.client = client
        self.client_key = self._key("login:client", client)

    def _key(self, kind: str, *values: str) -> str:
        """A store key of bounded length (an address forwarded by a proxy, or
        an email, can be any length) that reveals no address or email."""
        message = "\n".join(values).encode()
        return f"{kind}:" + hmac.new(self._keying, message, hashlib.sha256).hexdigest()[:32]

    def _account_keys(self, email: str) -> tuple[str, str]:
        """The keys of the account's failures from this client, and from all."""
        account = normalize_email(email)
        return self._key("login:account-client", account, self.client), self._key(
            "login:account", account
        )

    async def _count(self, key: str, window: int, limit: int, now: float) -> float | None:
        """Count one event under `key`; when the window resets if it is over `limit`."""
        hits, resets_at = await self.counters.hit(key, window, now)
        if hits == limit:
            logger.warning("limit reached: %s", key)
        return resets_at if hits > limit else None

    async def reserve(self, email: str) -> None:
        """Count one login on `email`'s account from this client before the
        password is checked: 429 when a limit is used up.

        `email` as the client sent it: it is keyed in the form the user
        lookup uses (`normalize_email`), so no variant has a count of its own.
        """
        now = time.time()
        settings = self.settings
        per_client = settings.login_attempts_per_client
        refused = await self._count(self.client_key, self.window, per_client, now)
        if refused is not None:
            _refuse(refused, now, "Too many logins from this address: try again later")
        pair_key, account_key = self._account_keys(email)
        refused = await self._count(pair_key, self.window, settings.login_attempts_per_account, now)
        if refused is not None:
            _refuse(refused, now, "Too many failed logins: try again later")
        all_clients = settings.login_attempts_per_account_all_clients
        refused = await self._count(account_key, self.window, all_clients, now)
        if refused is not None:
            # Refused before any check: this client's attempt did not happen.
            await self.counters.give_back(pair_key, now)
            _refuse(refused, now, "Too many failed logins: try again later")

    async def succeeded(self, email: str) -> None:
        """The password was right: this client's failures on the account start
        again, and the account-wide count gets the attempt back. The client's
        login stays counted (every login costs a hash)."""
        pair_key, account_key = self._account_keys(email)
        await self.counters.clear(pair_key)
        await self.counters.give_back(account_key, time.time())

    async def not_checked(self, email: str) -> None:
        """The password could not be checked (no hashing turn, 503): the
        attempt did not happen, so it is no failure on the account."""
        pair_key, account_key = self._account_keys(email)
        now = time.time()
        await self.counters.give_back(pair_key, now)
        await self.counters.give_back(account_key, now)

    async def reserve_code(self, user_id: int) -> None:
        """Count one second-factor code for the user from this client before
        it is checked: 429 when a limit is used up. The same limits as
        passwords (`LOGIN_ATTEMPTS_PER_ACCOUNT`, and `_ALL_CLIENTS`), under
        counts of their own, which a right password does not reset: codes
        cannot be guessed a few at a time between logins."""
        now = time.time()
        pair_key, account_key = self._code_keys(user_id)
        settings = self.settings
        refused = await self._count(pair_key, self.window, settings.login_attempts_per_account, now)
        if refused is not None:
            _refuse(refused, now, "Too many wrong codes: try again later")
        all_clients = settings.login_attempts_per_account_all_clients
        refused = await self._count(account_key, self.window, all_clients, now)
        if refused is not None:
            await self.counters.give_back(pair_key, now)
            _refuse(refused, now, "Too many wrong codes: try again later")

    async def code_succeeded(self, user_id: int) -> None:
        """The code was right: as `succeeded` for a password."""
        pair_key, account_key = self._code_keys(user_id)
        await self.counters.clear(pair_key)
        await self.counters.give_back(account_key, time.time())

    def _code_keys(self, user_id: int) -> tuple[str, str]:
        return self._key("code:account-client", str(user_id), self.client), self._key(
            "code:account", str(user_id)
        )

    async def reserve_registration(self) -> None:
        """Count one registration from this client before its password is
        hashed: 429 once `REGISTRATIONS_PER_CLIENT` is used up."""
        now = time.time()
        key = self._key("register:client", self.client)
        settings = self.settings
        window = settings.registration_window
        refused = await self._count(key, window, settings.registrations_per_client, now)
        if refused is not None:
            _refuse(refused, now, "Too many registrations from this address: try again later")

    async def reserve_password_reset(self, email: str) -> None:
        """Count one password reset request from this client and for this
        address (known or not: both are counted alike), in windows of
        `REGISTRATION_WINDOW`: 429 once either limit is used up."""
        now = time.time()
        settings = self.settings
        window = settings.registration_window
        for key, limit in (
            (self._key("reset:client", self.client), settings.password_resets_per_client),
            (
                self._key("reset:account", normalize_email(email)),
                settings.password_resets_per_address,
            ),
        ):
            refused = await self._count(key, window, limit, now)
            if refused is not None:
                _refuse(refused, now, "Too many password reset requests: try again later")


def client_of(address: str) -> str:
    """Whom a per-client limit counts: an IPv4 address, or an IPv6 address's
    /64 (one subscriber's network: its 2**64 addresses are one client).
    Anything else (not an IP address) is counted as the text it is."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


async def get_login_limiter(request: Request, counters: CountersDep) -> LoginLimiter:
    """The client address is the peer's or, from the proxies listed in
    FORWARDED_ALLOW_IPS (`__main__.py`), the one they forward in
    `X-Forwarded-For`: any text, of any length; it is hashed."""
    client = client_of(request.client.host) if request.client is not None else "unknown"
    return LoginLimiter(counters, get_settings(request), client)


LoginLimits = Annotated[LoginLimiter, Depends(get_login_limiter)]
