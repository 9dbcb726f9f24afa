"""The rules of SECURITY.md, each proven here (or in the test SECURITY.md names)."""

import asyncio
import base64
import contextlib
import logging
import re
import statistics
import threading
import time
from collections.abc import AsyncIterator
from typing import Any, NoReturn, cast

import jwt
import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient, Response
from pydantic import ValidationError
from starlette.types import Message
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from svc_sync_redis_postgres_jwt_ex.auth import passwords, routes
from svc_sync_redis_postgres_jwt_ex.auth.accounts import disable_user
from svc_sync_redis_postgres_jwt_ex.auth.tokens import key_id
from svc_sync_redis_postgres_jwt_ex.auth.users import get_user
from svc_sync_redis_postgres_jwt_ex.config import Settings
from svc_sync_redis_postgres_jwt_ex.db import DbSession
from svc_sync_redis_postgres_jwt_ex.sessions.deps import CurrentSession, UserSessionsDep
from svc_sync_redis_postgres_jwt_ex.sessions.store import SessionStore

from .conftest import (
    PRODUCTION,
    ROOT,
    TEST_KEY,
    AppFactory,
    ClientFactory,
    SessionProbe,
    login,
    register,
)
from .test_shop import add_product, add_to_cart

pytestmark = pytest.mark.anyio
NEW_KEY = "the-next-secret-key-0123456789abcdefghijklmnopqrstu"
PASSWORD = "correct horse"


def add_test_routes(app: FastAPI) -> None:
    """Routes of the tests' own: write, read and delete the session, fail after using it."""

    @app.post("/test/session")
    def write(values: dict[str, Any], session: CurrentSession) -> dict[str, Any]:
        for key, value in values.items():
            session[key] = value
        return dict(session)

    @app.get("/test/session")
    def read(session: CurrentSession) -> dict[str, Any]:
        return dict(session)

    @app.post("/test/destroy", status_code=204)
    def destroy(session: CurrentSession) -> None:
        session.destroy()

    @app.get("/test/error")
    def error(session: CurrentSession) -> None:
        raise RuntimeError("a bug in a route that used the session")

    @app.post("/test/disable/{user_id}", status_code=204)
    def disable(user_id: int, db: DbSession, sessions: UserSessionsDep) -> None:
        user = get_user(db, user_id)
        assert user is not None
        disable_user(user, sessions, db)


@pytest.fixture
async def test_app(app: FastAPI) -> FastAPI:
    add_test_routes(app)
    return app


async def make_test_app(make_app: AppFactory, **overrides: Any) -> FastAPI:
    app = await make_app(**overrides)
    add_test_routes(app)
    return app


@contextlib.asynccontextmanager
async def client_at(app: FastAPI, address: str) -> AsyncIterator[AsyncClient]:
    """A client calling from another address."""
    transport = ASGITransport(app, client=(address, 50000))
    async with AsyncClient(transport=transport, base_url="https://testserver") as client:
        yield client


async def raw_get(app: FastAPI, path: str, headers: list[tuple[bytes, bytes]]) -> Message:
    """Call the app with header bytes no HTTP client would send; returns the
    `http.response.start` message."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "https",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 443),
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent[0]


async def signed_in(client: AsyncClient, email: str = "ada@example.com") -> dict[str, Any]:
    await register(client, email)
    return await login(client, email)


async def attempt(client: AsyncClient, email: str, password: str) -> Response:
    return await post_attempt(client, email, password)


async def post_attempt(
    client: AsyncClient, email: str, password: str, headers: dict[str, str] | None = None
) -> Response:
    form = {"username": email, "password": password}
    return await client.post("/auth/token", data=form, headers=headers)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def claims_of(access_token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(access_token, options={"verify_signature": False})
    return claims


def forge(claims: dict[str, Any], key: str = TEST_KEY) -> str:
    return jwt.encode(claims, key, algorithm="HS256", headers={"kid": key_id(key)})


# --------------------------------------------------------------------- 1. session ids


async def test_refresh_secrets_have_256_random_bits_and_never_repeat(
    client: AsyncClient, make_client: ClientFactory
) -> None:
    await register(client, "ada@example.com")
    secrets = set()
    for _ in range(10):
        tokens = await login(await make_client(), "ada@example.com")
        # <handle>.<nonce>.<MAC of handle and nonce>
        nonce = tokens["refresh_token"].split(".")[1]
        assert len(base64.urlsafe_b64decode(nonce + "=")) == 32
        secrets.add(nonce)
    assert len(secrets) == 10


async def test_a_validly_signed_token_for_a_session_never_issued_is_refused(
    client: AsyncClient,
) -> None:
    tokens = await signed_in(client)
    forged = forge(claims_of(tokens["access_token"]) | {"sid": "never-issued-handle"})
    assert (await client.get("/auth/me", headers=bearer(forged))).status_code == 401


async def test_a_login_as_another_user_starts_with_empty_session_data(
    test_app: FastAPI, client: AsyncClient
) -> None:
    await signed_in(client, "ada@example.com")
    assert (await client.post("/test/session", json={"cart": "ada's"})).status_code == 200
    # Logging in again as the session's own user keeps its data.
    await login(client, "ada@example.com")
    assert (await client.get("/test/session")).json() == {"cart": "ada's"}
    # Bob logs in while sending Ada's access token: none of her data is his.
    await register(client, "bob@example.com")
    await login(client, "bob@example.com")
    assert (await client.get("/auth/me")).json()["email"] == "bob@example.com"
    assert (await client.get("/test/session")).json() == {}


# --------------------------------------------------------------------- 1. transport


async def test_the_token_is_never_read_from_the_query_string_or_body(
    client: AsyncClient, make_client: ClientFactory
) -> None:
    tokens = await signed_in(client)
    thief = await make_client()
    query = await thief.get("/auth/me", params={"access_token": tokens["access_token"]})
    assert query.status_code == 401
    form = await thief.request("GET", "/auth/me", data={"access_token": tokens["access_token"]})
    assert form.status_code == 401


async def test_session_secrets_reach_no_log_header_or_error_body(
    test_app: FastAPI, make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = await make_client(raise_app_exceptions=False)
    tokens = await signed_in(client)
    secrets = [tokens["access_token"], tokens["refresh_token"].partition(".")[2]]
    responses = [
        await client.get("/test/session"),
        await client.post("/test/session", json={"n": 2}),
        await client.get("/test/error"),
    ]
    assert responses[-1].status_code == 500
    assert "a bug in a route" in caplog.text, "the failure was logged"
    for secret in secrets:
        assert secret not in caplog.text
        for response in responses:
            assert secret not in response.text
            assert not any(
                secret in value for name, value in response.headers.items() if name != "set-cookie"
            )


async def test_responses_that_use_the_session_are_not_cached(
    test_app: FastAPI, client: AsyncClient
) -> None:
    assert "cache-control" not in (await client.get("/health")).headers
    tokens = await signed_in(client)
    responses = [
        await client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]}),
        await client.get("/auth/me"),
        await client.get("/test/session"),
        await attempt(client, "ada@example.com", PASSWORD),
    ]
    for response in responses:
        assert response.status_code < 300, response.text
        assert response.headers["cache-control"] == "no-store"


ODD_VALUES = [
    b'"' + b"a" * 43 + b'"',
    b"a" * 100_000,
    b"x\r\nSet-Cookie: injected=1",
    b"a" * 43 + b"." + b"\xff" * 43,
    b'\\";,=' * 20,
    b"\x00\x01\x7f",
]


@pytest.mark.parametrize(
    "value", ODD_VALUES, ids=["quoted", "huge", "crlf", "non-ascii", "punctuation", "control"]
)
async def test_odd_tokens_are_refused_without_a_500_or_injected_headers(
    test_app: FastAPI, value: bytes
) -> None:
    header = (b"authorization", b"Bearer " + value)
    start = await raw_get(test_app, "/auth/me", [header])
    assert start["status"] == 401
    for _name, header_value in start["headers"]:
        assert b"\r" not in header_value
        assert b"\n" not in header_value
        assert b"injected" not in header_value


# --------------------------------------------------------------------- 1. ending sessions


async def test_changing_the_password_renews_this_session_and_ends_the_others(
    client: AsyncClient, make_client: ClientFactory
) -> None:
    first = await signed_in(client)
    other = await make_client()
    await login(other, "ada@example.com")
    change = {"current_password": PASSWORD, "new_password": "a brand new horse"}
    response = await client.post("/auth/password", json=change)
    assert response.status_code == 200
    renewed = response.json()
    assert claims_of(renewed["access_token"])["sid"] != claims_of(first["access_token"])["sid"]
    me = await client.get("/auth/me", headers=bearer(renewed["access_token"]))
    assert me.status_code == 200
    assert (await client.get("/auth/me")).status_code == 401, "the old access token"
    assert (await other.get("/auth/me")).status_code == 401
    refresh = await client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert refresh.status_code == 401
    assert (await attempt(await make_client(), "ada@example.com", PASSWORD)).status_code == 401
    await login(await make_client(), "ada@example.com", "a brand new horse")


async def test_a_wrong_current_password_changes_nothing(
    client: AsyncClient, make_client: ClientFactory
) -> None:
    await signed_in(client)
    other = await make_client()
    await login(other, "ada@example.com")
    change = {"current_password": "not my password", "new_password": "a brand new horse"}
    assert (await client.post("/auth/password", json=change)).status_code == 403
    assert (await client.get("/auth/me")).status_code == 200
    assert (await other.get("/auth/me")).status_code == 200


async def test_a_disabled_user_loses_every_session_and_cannot_log_in(
    test_app: FastAPI, client: AsyncClient, make_client: ClientFactory, probe: SessionProbe
) -> None:
    await signed_in(client)
    user_id = (await client.get("/auth/me")).json()["id"]
    other = await make_client()
    await login(other, "ada@example.com")
    bystander = await make_client()
    await signed_in(bystander, "bob@example.com")
    assert (await (await make_client()).post(f"/test/disable/{user_id}")).status_code == 204
    assert [state for state in await probe.states() if state.user_id == user_id] == []
    assert (await client.get("/auth/me")).status_code == 401
    assert (await other.get("/auth/me")).status_code == 401
    assert (await attempt(await make_client(), "ada@example.com", PASSWORD)).status_code == 401
    assert (await bystander.get("/auth/me")).status_code == 200


# --------------------------------------------------------------------- 3. JWT


async def test_a_token_whose_kid_names_another_key_is_refused(
    make_app: AppFactory, make_client: ClientFactory
) -> None:
    client = await make_client(await make_app(secret_key=[NEW_KEY, TEST_KEY]))
    claims = claims_of((await signed_in(client))["access_token"])
    mismatched = jwt.encode(claims, NEW_KEY, algorithm="HS256", headers={"kid": key_id(TEST_KEY)})
    no_kid = jwt.encode(claims, NEW_KEY, algorithm="HS256")
    for token in (mismatched, no_kid):
        assert (await client.get("/auth/me", headers=bearer(token))).status_code == 401
    assert (await client.get("/auth/me", headers=bearer(forge(claims, NEW_KEY)))).status_code == 200


async def test_claims_are_all_required_and_iat_may_not_be_in_the_future(
    client: AsyncClient,
) -> None:
    claims = claims_of((await signed_in(client))["access_token"])
    refused = [forge(claims | {"iat": int(time.time()) + 3600}), forge(claims | {"typ": "refresh"})]
    refused += [forge({k: v for k, v in claims.items() if k != name}) for name in claims]
    for token in refused:
        assert (await client.get("/auth/me", headers=bearer(token))).status_code == 401
    assert (await client.get("/auth/me", headers=bearer(forge(claims)))).status_code == 200


async def test_an_access_token_is_no_refresh_token(client: AsyncClient) -> None:
    tokens = await signed_in(client)
    response = await client.post("/auth/refresh", json={"refresh_token": tokens["access_token"]})
    assert response.status_code in (401, 422)
    assert (await client.get("/auth/me")).status_code == 200


@pytest.mark.slow
async def test_refresh_tokens_end_with_the_login_sessions_absolute_lifetime(
    make_app: AppFactory, make_client: ClientFactory
) -> None:
    app = await make_app(session_absolute_timeout=2, session_idle_timeout=60)
    client = await make_client(app)
    tokens = await signed_in(client)
    await asyncio.sleep(1)
    response = await client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert response.status_code == 200
    await asyncio.sleep(1.2)
    again = await client.post(
        "/auth/refresh", json={"refresh_token": response.json()["refresh_token"]}
    )
    assert again.status_code == 401


# --------------------------------------------------------------------- 3-4. SECRET_KEY


def test_production_refuses_a_missing_or_short_secret_key(settings: Settings) -> None:
    base = settings.model_dump()
    for bad in ([], ["x" * 31], [NEW_KEY, "short"]):
        with pytest.raises(ValidationError):
            Settings.model_validate(base | PRODUCTION | {"secret_key": bad})
    keys = f"{NEW_KEY},{TEST_KEY}"
    prod = Settings.model_validate(base | PRODUCTION | {"secret_key": keys})
    assert prod.secret_key == [NEW_KEY, TEST_KEY]
    assert Settings.model_validate(base | {"secret_key": ["short"]}).environment == "test"


def test_production_refuses_a_placeholder_secret_key(settings: Settings) -> None:
    """32 bytes, but fewer than 10 distinct characters: `aaaa…` is no secret."""
    base = settings.model_dump()
    for bad in (["a" * 32], [NEW_KEY, "ab" * 32], ["012345678" * 4, NEW_KEY]):
        with pytest.raises(ValidationError, match="SECRET_KEY: every key must have at least 10"):
            Settings.model_validate(base | PRODUCTION | {"secret_key": bad})
    enough = ["0123456789" * 4]
    assert Settings.model_validate(base | PRODUCTION | {"secret_key": enough})
    assert Settings.model_validate(base | {"secret_key": ["a" * 32]}).environment == "test"


# --------------------------------------------------------------------- 5. failed logins


async def test_failed_logins_are_limited_per_account(
    make_app: AppFactory, make_client: ClientFactory
) -> None:
    app = await make_app(login_attempts_per_account=3)
    client = await make_client(app)
    await register(client, "ada@example.com")
    await register(client, "bob@example.com")
    for email in ("ada@example.com", "ada@example.com", "ADA@Example.com"):
        assert (await attempt(client, email, "wrong password")).status_code == 401
    limited = await attempt(client, "ada@example.com", PASSWORD)
    assert limited.status_code == 429, "even with the right password"
    assert 1 <= int(limited.headers["retry-after"]) <= 900
    assert (await attempt(client, "bob@example.com", PASSWORD)).status_code == 200


async def test_failed_logins_are_limited_per_client_address(
    make_app: AppFactory, make_client: ClientFactory
) -> None:
    app = await make_app(login_attempts_per_client=3)
    client = await make_client(app)
    await register(client, "ada@example.com")
    for name in ("eve", "mallory", "trent"):
        assert (await attempt(client, f"{name}@example.com", PASSWORD)).status_code == 401
    assert (await attempt(client, "ada@example.com", PASSWORD)).status_code == 429
    async with client_at(app, "192.0.2.7") as elsewhere:
        assert (await attempt(elsewhere, "ada@example.com", PASSWORD)).status_code == 200


async def test_the_login_limit_holds_across_worker_processes(
    make_app: AppFactory, make_client: ClientFactory
) -> None:
    """Two apps on one store stand for two workers: the count is in the store."""
    first = await make_client(await make_app(login_attempts_per_account=3))
    second = await make_client(await make_app(login_attempts_per_account=3))
    await register(first, "ada@example.com")
    for client in (first, second, first):
        assert (await attempt(client, "ada@example.com", "wrong password")).status_code == 401
    assert (await attempt(second, "ada@example.com", PASSWORD)).status_code == 429


@pytest.mark.slow
async def test_the_login_limit_never_locks_the_user_out_for_good(
    make_app: AppFactory, make_client: ClientFactory
) -> None:
    # The window starts at the first attempt, before its password check: 3 s
    # leave room for two checks on a loaded machine.
    app = await make_app(login_attempts_per_account=2, login_attempts_window=3)
    client = await make_client(app)
    await register(client, "ada@example.com")
    for _ in range(2):
        assert (await attempt(client, "ada@example.com", "wrong password")).status_code == 401
    assert (await attempt(client, "ada@example.com", PASSWORD)).status_code == 429
    await asyncio.sleep(3.2)
    assert (await attempt(client, "ada@example.com", PASSWORD)).status_code == 200
    # A successful login starts the account's count again.
    assert (await attempt(client, "ada@example.com", "wrong password")).status_code == 401
    assert (await attempt(client, "ada@example.com", PASSWORD)).status_code == 200


def count_password_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The passwords that login routes check, from now on."""
    checked: list[str] = []
    verify = passwords.verify_password

    def counted(password: str, password_hash: str | None) -> bool:
        checked.append(password)
        return verify(password, password_hash)

    monkeypatch.setattr(routes, "verify_password", counted)
    return checked


async def test_parallel_guesses_get_no_more_password_checks_than_the_limit(
    make_app: AppFactory, make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """19 wrong passwords all at once: each attempt is counted before its
    check, so at most 5 are checked and the others get 429; the right
    password afterwards is refused too, unchecked."""
    app = await make_app(login_attempts_per_account=5)
    client = await make_client(app)
    await register(client, "ada@example.com")
    checked = count_password_checks(monkeypatch)
    guesses = [attempt(client, "ada@example.com", f"wrong password {n}") for n in range(19)]
    statuses = [response.status_code for response in await asyncio.gather(*guesses)]
    assert 1 <= len(checked) <= 5, f"{len(checked)} passwords checked: {statuses}"
    assert statuses.count(401) == len(checked), statuses
    assert statuses.count(429) == 19 - len(checked), statuses
    # A success would clear the count, so the right password must not even be checked.
    assert (await attempt(client, "ada@example.com", PASSWORD)).status_code == 429
    assert PASSWORD not in checked


async def test_a_request_that_fails_after_a_wrong_password_still_counts(
    make_app: AppFactory, make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure after the check (a 500) undoes the request, not its count."""
    app = await make_app(login_attempts_per_account=3)
    client = await make_client(app, raise_app_exceptions=False)
    await register(client, "ada@example.com")

    def fail(detail: str) -> NoReturn:
        raise RuntimeError(f"a bug after the failed login: {detail}")

    monkeypatch.setattr(routes, "refused", fail)
    for _ in range(3):
        assert (await attempt(client, "ada@example.com", "wrong password")).status_code == 500
    monkeypatch.undo()
    assert (await attempt(client, "ada@example.com", PASSWORD)).status_code == 429


async def test_email_variants_are_one_account_with_one_limit(
    make_app: AppFactory, make_client: ClientFactory
) -> None:
    """Case, surrounding spaces and compatibility forms name one account (and
    one count); an accented look-alike is an account of its own."""
    app = await make_app(login_attempts_per_account=3)
    client = await make_client(app)
    await register(client, "victim@example.com")
    lookalike = await register(client, "victím@example.com", "another password")
    taken = await client.post(
        "/auth/register", json={"email": " VICTIM@Example.com ", "password": PASSWORD}
    )
    assert taken.status_code == 409
    # "\uff56" is a fullwidth v: NFKC makes it a v.
    for variant in ("VICTIM@example.com", " victim@example.com ", "\uff56ictim@example.com"):
        assert (await attempt(client, variant, "wrong password")).status_code == 401
    for variant in (
        "victim@example.com",
        "Victim@Example.com ",
        "\uff56\uff49\uff43\uff54\uff49\uff4d@example.com",
    ):
        assert (await attempt(client, variant, PASSWORD)).status_code == 429, variant
    # The look-alike neither logs in as the victim nor shares the victim's limit.
    assert (await attempt(client, "victím@example.com", PASSWORD)).status_code == 401
    signed = await attempt(client, "VICTÍM@example.com", "another password")
    assert signed.status_code == 200
    me = await client.get("/auth/me", headers=bearer(signed.json()["access_token"]))
    assert me.json()["id"] == lookalike


async def test_a_forwarded_client_address_of_any_length_is_limited_without_a_500(
    make_app: AppFactory,
) -> None:
    """Behind a trusted proxy the client address comes from `X-Forwarded-For`:
    a long one is counted (hashed, not cut: two that differ at the end are two
    clients), and never overflows the store."""
    app = await make_app(login_attempts_per_client=2)
    # uvicorn's own middleware (`--proxy-headers --forwarded-allow-ips='*'`);
    # its ASGI types are uvicorn's, not Starlette's.
    proxied = ProxyHeadersMiddleware(cast(Any, app), trusted_hosts="*")
    transport = ASGITransport(cast(Any, proxied))
    async with AsyncClient(transport=transport, base_url="https://testserver") as client:
        await register(client, "ada@example.com")
        first = {"X-Forwarded-For": "2001:db8::" + "a" * 110 + "1"}
        second = {"X-Forwarded-For": "2001:db8::" + "a" * 110 + "2"}
        for name in ("eve", "mallory"):
            response = await post_attempt(client, f"{name}@example.com", PASSWORD, first)
            assert response.status_code == 401
        assert (await post_attempt(client, "ada@example.com", PASSWORD, first)).status_code == 429
        assert (await post_attempt(client, "ada@example.com", PASSWORD, second)).status_code == 200


@pytest.mark.slow
@pytest.mark.real_password_hashing
async def test_an_unknown_email_takes_as_long_as_a_wrong_password(
    make_app: AppFactory, make_client: ClientFactory
) -> None:
    """An unknown email is checked against a dummy hash: timing tells no one
    which emails have accounts. Interleaved, and medians, for a loaded machine."""
    app = await make_app(login_attempts_per_account=100, login_attempts_per_client=100)
    client = await make_client(app)
    await register(client, "ada@example.com")
    timings: dict[str, list[float]] = {"known": [], "unknown": []}
    for n in range(8):
        tries = [("known", "ada@example.com"), ("unknown", f"nobody{n}@example.com")]
        for kind, email in tries if n % 2 else reversed(tries):
            started = time.perf_counter()
            assert (await attempt(client, email, "wrong password")).status_code == 401
            timings[kind].append(time.perf_counter() - started)
    ratio = statistics.median(timings["unknown"]) / statistics.median(timings["known"])
    assert 0.5 <= ratio <= 2, timings


# --------------------------------------------------------------------- 5. size caps


async def test_request_bodies_over_the_cap_get_413_and_store_nothing(
    make_app: AppFactory, make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = await make_test_app(make_app, max_body_size=1000)
    probe = SessionProbe(app, monkeypatch)
    client = await make_client(app)
    declared = await client.post("/test/session", json={"blob": "x" * 2000})
    assert declared.status_code == 413

    async def chunks() -> AsyncIterator[bytes]:
        """Streamed without Content-Length."""
        yield b'{"blob": "'
        for _ in range(20):
            yield b"x" * 100
        yield b'"}'

    streamed = await client.post(
        "/test/session", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert streamed.status_code == 413
    assert await probe.states() == []
    assert (await client.post("/test/session", json={"blob": "x" * 900})).status_code == 200


async def test_a_body_trickled_past_request_body_timeout_gets_408_and_stores_nothing(
    make_app: AppFactory, make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = await make_test_app(make_app, request_body_timeout=0.5)
    probe = SessionProbe(app, monkeypatch)
    client = await make_client(app)

    async def trickle() -> AsyncIterator[bytes]:
        """One byte every 0.2 s: each read is quick, the whole body is not."""
        yield b'{"blob": "'
        for _ in range(10):
            await asyncio.sleep(0.2)
            yield b"x"
        yield b'"}'

    slow = await client.post(
        "/test/session", content=trickle(), headers={"Content-Type": "application/json"}
    )
    assert slow.status_code == 408
    assert await probe.states() == []
    assert (await client.post("/test/session", json={"blob": "x"})).status_code == 200


async def test_session_data_over_the_cap_gets_413_and_is_not_stored(
    make_app: AppFactory, make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = await make_test_app(make_app, session_max_size=1000)
    probe = SessionProbe(app, monkeypatch)
    client = await make_client(app)
    await signed_in(client)
    assert (await client.post("/test/session", json={"small": "x"})).status_code == 200
    big = await client.post("/test/session", json={"blob": "x" * 1000})
    assert big.status_code == 413
    assert "set-cookie" not in big.headers
    assert [state.data for state in await probe.states()] == [{"small": "x"}]


# --------------------------------------------------------------------- 6. parallel requests


def hold_session_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the next two requests both load the session before either saves it."""
    barrier = threading.Barrier(2, timeout=30)
    load = SessionStore.get_by_handle

    def load_then_wait(store: SessionStore, key: str, now: float) -> Any:
        state = load(store, key, now)
        barrier.wait()
        return state

    monkeypatch.setattr(SessionStore, "get_by_handle", load_then_wait)


async def test_concurrent_requests_changing_different_keys_keep_both(
    test_app: FastAPI, client: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    await signed_in(client)
    await client.post("/test/session", json={"start": 0})
    hold_session_loads(monkeypatch)
    await asyncio.gather(
        client.post("/test/session", json={"a": 1}),
        client.post("/test/session", json={"b": 2}),
    )
    monkeypatch.undo()
    assert (await client.get("/test/session")).json() == {"start": 0, "a": 1, "b": 2}


async def test_concurrent_cart_additions_are_all_kept(
    shopper: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    teapot, cup = await add_product(shopper), await add_product(shopper)
    await shopper.get("/cart")
    hold_session_loads(monkeypatch)
    await asyncio.gather(add_to_cart(shopper, teapot, 1), add_to_cart(shopper, cup, 2))
    monkeypatch.undo()
    items = (await shopper.get("/cart")).json()["items"]
    expected = sorted([(teapot, 1), (cup, 2)])
    assert sorted((item["product_id"], item["quantity"]) for item in items) == expected


async def test_a_session_deleted_meanwhile_is_not_brought_back(
    test_app: FastAPI, client: AsyncClient, probe: SessionProbe, monkeypatch: pytest.MonkeyPatch
) -> None:
    await signed_in(client)
    await client.post("/test/session", json={"start": 0})
    hold_session_loads(monkeypatch)
    await asyncio.gather(
        client.post("/test/session", json={"a": 1}),
        client.post("/test/destroy"),
    )
    monkeypatch.undo()
    assert await probe.states() == []


# --------------------------------------------------------------------- SECURITY.md


def test_security_md_names_only_tests_that_exist() -> None:
    named = re.findall(r"`(test_\w+\.py)::(test_\w+)`", (ROOT / "SECURITY.md").read_text())
    assert len(named) > 10
    for file, name in named:
        assert f"def {name}(" in (ROOT / "tests" / file).read_text(), f"{file}::{name}"
