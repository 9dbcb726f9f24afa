"""The second factor (TOTP): setting it up, the login that asks for a code,
codes and recovery codes that work once, limits, turning it off, and its
secrets encrypted at rest.

Codes are computed with `pyotp` from the secret the service returns. The set
up uses the code of the time step of `t0`, and logins the next step's (the
service accepts one step of drift either way), so that no test depends on
where in its 30 seconds a step is.
"""

import time
from typing import Any

import pyotp
import pytest
from httpx import AsyncClient, Response
from sqlalchemy import select

from svc_async_sqlite_session_ex.auth import routes
from svc_async_sqlite_session_ex.auth.totp import decrypt_secret
from svc_async_sqlite_session_ex.config import Settings
from svc_async_sqlite_session_ex.models import RecoveryCode, User

from .conftest import TEST_KEY, AppFactory, ClientFactory, Database, login, register

pytestmark = pytest.mark.anyio
EMAIL = "ada@example.com"
PASSWORD = "correct horse"
COOKIE = "__Host-session"


class Enrolled:
    """A user with TOTP active: its generator, its recovery codes, and `t0`."""

    def __init__(self, totp: pyotp.TOTP, recovery_codes: list[str], t0: float) -> None:
        self.totp = totp
        self.recovery_codes = recovery_codes
        self.t0 = t0

    def code(self, steps_later: int = 1) -> str:
        return self.totp.at(self.t0 + 30 * steps_later)


async def start_setup(client: AsyncClient) -> pyotp.TOTP:
    response = await client.post("/auth/mfa/totp", json={"current_password": PASSWORD})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"secret", "otpauth_uri"}
    assert body["otpauth_uri"].startswith("otpauth://totp/")
    assert f"secret={body['secret']}" in body["otpauth_uri"]
    return pyotp.TOTP(body["secret"])


async def enrol(client: AsyncClient, email: str = EMAIL) -> Enrolled:
    """Register, log in and turn TOTP on; the client stays logged in."""
    await register(client, email)
    await login(client, email)
    totp = await start_setup(client)
    t0 = time.time()
    response = await client.post("/auth/mfa/totp/confirm", json={"code": totp.at(t0)})
    assert response.status_code == 200, response.text
    return Enrolled(totp, response.json()["recovery_codes"], t0)


async def start_login(client: AsyncClient, email: str = EMAIL) -> str:
    """The first step of a login with a second factor: the password. Returns
    the cookie of the session waiting for the code."""
    response = await client.post("/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    assert response.json() == {"mfa_required": True}
    return client.cookies[COOKIE]


async def finish_login(client: AsyncClient, pending: str, code: str) -> Response:
    """The second step, from the client's session (`pending`); sets the CSRF
    header when it succeeds. The client sends no CSRF token before."""
    assert client.cookies[COOKIE] == pending
    assert "X-CSRF-Token" not in client.headers
    response = await client.post("/auth/login/mfa", json={"code": code})
    if response.status_code == 200:
        client.headers["X-CSRF-Token"] = response.json()["csrf_token"]
    return response


async def stored_factor(database: Database) -> tuple[Any, list[Any]]:
    """The (only) user's stored TOTP secret and recovery codes."""
    stored = await database.scalar(select(User.totp_secret))
    return stored, await database.scalars(select(RecoveryCode.code_hash))


async def test_setup_is_pending_until_a_code_confirms_it(client: AsyncClient) -> None:
    await register(client, EMAIL)
    await login(client, EMAIL)
    wrong = await client.post("/auth/mfa/totp", json={"current_password": "not my password"})
    assert wrong.status_code == 403
    assert "detail" in wrong.json()
    nothing = await client.post("/auth/mfa/totp/confirm", json={"code": "123456"})
    assert nothing.status_code == 400
    replaced = await start_setup(client)
    totp = await start_setup(client)
    assert (await client.get("/auth/me")).json()["mfa"] is False
    t0 = time.time()
    # A new setup replaced the first: its codes are wrong.
    stale = await client.post("/auth/mfa/totp/confirm", json={"code": replaced.at(t0)})
    assert stale.status_code == 400
    response = await client.post("/auth/mfa/totp/confirm", json={"code": totp.at(t0)})
    assert response.status_code == 200
    codes = response.json()["recovery_codes"]
    assert len(codes) == len(set(codes)) == 10
    assert (await client.get("/auth/me")).json()["mfa"] is True


async def test_login_asks_for_the_code_and_a_code_works_once(
    client: AsyncClient, make_client: ClientFactory
) -> None:
    enrolled = await enrol(client)
    browser = await make_client()
    pending = await start_login(browser)
    response = await finish_login(browser, pending, enrolled.code())
    assert response.status_code == 200, response.text
    assert set(response.json()) == {"id", "email", "csrf_token"}
    # A fresh session id, never the pending one.
    assert browser.cookies[COOKIE] != pending
    me = await browser.get("/auth/me")
    assert me.status_code == 200
    assert me.json()["mfa"] is True
    # The same code, and an earlier one, are refused from then on.
    replay = await make_client()
    pending = await start_login(replay)
    assert (await finish_login(replay, pending, enrolled.code())).status_code == 401
    assert (await finish_login(replay, pending, enrolled.code(0))).status_code == 401
    assert (await finish_login(replay, pending, "000000")).status_code == 401
    assert (await replay.get("/auth/me")).status_code == 401


async def test_the_code_step_needs_no_csrf_token_but_refuses_other_sites(
    client: AsyncClient, make_client: ClientFactory
) -> None:
    enrolled = await enrol(client)
    browser = await make_client()
    await start_login(browser)
    other_site = {"Origin": "https://evil.example"}
    body = {"code": enrolled.code()}
    refused = await browser.post("/auth/login/mfa", json=body, headers=other_site)
    assert refused.status_code == 403
    assert (await browser.post("/auth/login/mfa", json=body)).status_code == 200


async def test_a_recovery_code_works_once(client: AsyncClient, make_client: ClientFactory) -> None:
    enrolled = await enrol(client)
    first = await make_client()
    pending = await start_login(first)
    assert (await finish_login(first, pending, enrolled.recovery_codes[0])).status_code == 200
    second = await make_client()
    pending = await start_login(second)
    assert (await finish_login(second, pending, enrolled.recovery_codes[0])).status_code == 401
    # Case and dashes do not count.
    other = enrolled.recovery_codes[1].replace("-", "").upper()
    assert (await finish_login(second, pending, other)).status_code == 200


async def test_a_pending_login_grants_nothing(
    client: AsyncClient, make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    enrolled = await enrol(client)
    browser = await make_client()
    pending = await start_login(browser)
    for path in ("/auth/me", "/auth/sessions"):
        assert (await browser.get(path)).status_code == 401
    setup = await browser.post("/auth/mfa/totp", json={"current_password": PASSWORD})
    assert setup.status_code == 401
    # A login waits for its code a few minutes, not longer.
    monkeypatch.setattr(routes, "PENDING_LOGIN_LIFETIME", -1)
    late = await make_client()
    expired = await start_login(late)
    assert (await finish_login(late, expired, enrolled.code())).status_code == 401
    assert (await finish_login(browser, pending, enrolled.code())).status_code == 200


async def test_a_password_change_voids_a_waiting_login(
    client: AsyncClient, make_client: ClientFactory
) -> None:
    """A login whose password was checked waits for its code with that
    password: once the password changes, the code no longer completes it."""
    enrolled = await enrol(client)
    browser = await make_client()
    pending = await start_login(browser)
    change = {"current_password": PASSWORD, "new_password": "a new passphrase"}
    assert (await client.post("/auth/password", json=change)).status_code == 204
    assert (await finish_login(browser, pending, enrolled.code())).status_code == 401


async def test_logging_out_everywhere_voids_a_waiting_login(
    client: AsyncClient, make_client: ClientFactory
) -> None:
    """The waiting login holds the credential epoch its password check read:
    "log out everywhere" raises it, so the code no longer completes that login."""
    enrolled = await enrol(client)
    browser = await make_client()
    pending = await start_login(browser)
    assert (await client.delete("/auth/sessions")).status_code == 204
    assert (await finish_login(browser, pending, enrolled.code())).status_code == 401


async def test_wrong_codes_are_limited_like_logins(
    make_app: AppFactory, make_client: ClientFactory
) -> None:
    app = await make_app(login_attempts_per_account=3)
    enrolled = await enrol(await make_client(app))
    guesser = await make_client(app)
    pending = await start_login(guesser)
    wrong = [(await finish_login(guesser, pending, "000000")).status_code for _ in range(3)]
    assert wrong == [401, 401, 401]
    refused = await finish_login(guesser, pending, enrolled.code())
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0
    # A right password does not give the guesser more codes to try.
    pending = await start_login(guesser)
    assert (await finish_login(guesser, pending, enrolled.code())).status_code == 429


async def test_turning_it_off(
    client: AsyncClient, make_client: ClientFactory, database: Database
) -> None:
    await enrol(client)
    body = {"current_password": "not my password"}
    assert (await client.request("DELETE", "/auth/mfa/totp", json=body)).status_code == 403
    body = {"current_password": PASSWORD}
    assert (await client.request("DELETE", "/auth/mfa/totp", json=body)).status_code == 204
    assert (await client.get("/auth/me")).json()["mfa"] is False
    # Logins ask for no code, and the secret and recovery codes are gone.
    browser = await make_client()
    await login(browser, EMAIL)
    assert (await browser.get("/auth/me")).status_code == 200
    assert await stored_factor(database) == (None, [])


async def test_secrets_are_not_stored_in_clear(
    client: AsyncClient,
    make_app: AppFactory,
    make_client: ClientFactory,
    database: Database,
    settings: Settings,
) -> None:
    enrolled = await enrol(client)
    secret = enrolled.totp.secret
    stored, hashes = await stored_factor(database)
    assert secret not in stored
    assert decrypt_secret(settings, stored) == secret
    assert len(hashes) == 10
    for code in enrolled.recovery_codes:
        assert all(code not in value and code.replace("-", "") not in value for value in hashes)
    # Rotating SECRET_KEY: a secret encrypted with a key still listed is read.
    keys = ["a newer key, as long as a real one", TEST_KEY]
    rotated = await make_client(await make_app(secret_key=keys))
    pending = await start_login(rotated)
    assert (await finish_login(rotated, pending, enrolled.code())).status_code == 200
