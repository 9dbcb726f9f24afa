"""The session machinery: cookie, storage, laziness and expiry."""

import asyncio
import hashlib
import time
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient, Response

from svc_async_sqlite_session_ex.sessions.deps import CurrentSession
from svc_async_sqlite_session_ex.sessions.middleware import TokenSigner
from svc_async_sqlite_session_ex.sessions.store import SessionStore

from .conftest import TEST_KEY, AppFactory, ClientFactory, SessionProbe

pytestmark = pytest.mark.anyio
COOKIE = "__Host-session"


def add_test_routes(app: FastAPI) -> None:
    """Two tiny routes of the tests' own, to drive the session directly."""

    @app.post("/test/session")
    async def write(values: dict[str, Any], session: CurrentSession) -> dict[str, Any]:
        for key, value in values.items():
            session[key] = value
        return dict(session)

    @app.get("/test/session")
    async def read(session: CurrentSession) -> dict[str, Any]:
        return dict(session)


@pytest.fixture
async def session_app(app: FastAPI) -> FastAPI:
    add_test_routes(app)
    return app


async def start_session(client: AsyncClient) -> Response:
    response = await client.post("/test/session", json={"colour": "blue"})
    assert response.status_code == 200, response.text
    return response


def keep_cookie_forever(client: AsyncClient) -> None:
    """Drop the cookie's Max-Age, as a client ignoring it would: then only the
    server's own expiry can end the session."""
    value = client.cookies[COOKIE]
    client.cookies.clear()
    client.cookies.set(COOKIE, value)


def session_token(client: AsyncClient) -> str:
    token = TokenSigner([TEST_KEY]).unsign(client.cookies[COOKIE])
    assert token is not None
    return token


async def test_cookie_is_host_only_http_only_secure_and_lax(
    session_app: FastAPI, client: AsyncClient
) -> None:
    header = (await start_session(client)).headers["set-cookie"]
    assert header.startswith(f"{COOKIE}=")
    attributes = {part.strip().split("=")[0].lower() for part in header.split(";")[1:]}
    assert {"httponly", "secure", "path", "samesite", "max-age"} <= attributes
    assert "domain" not in attributes
    assert "SameSite=Lax" in header
    assert "Path=/;" in header


async def test_data_survives_between_requests(session_app: FastAPI, client: AsyncClient) -> None:
    await start_session(client)
    response = await client.get("/test/session")
    assert response.json() == {"colour": "blue"}


async def test_store_keeps_only_a_hash_of_the_id(
    session_app: FastAPI, client: AsyncClient, probe: SessionProbe
) -> None:
    await start_session(client)
    token = session_token(client)
    ids = [state.id for state in await probe.states()]
    assert ids == [hashlib.sha256(token.encode()).hexdigest()]
    assert token not in ids


async def test_routes_without_the_session_cost_no_store_round_trip(
    session_app: FastAPI, client: AsyncClient, probe: SessionProbe
) -> None:
    await start_session(client)
    probe.operations.clear()
    assert (await client.get("/health")).status_code == 200
    assert probe.operations == []


async def test_an_unchanged_session_is_read_once_and_not_rewritten(
    session_app: FastAPI, client: AsyncClient, probe: SessionProbe
) -> None:
    await start_session(client)
    probe.operations.clear()
    assert (await client.get("/test/session")).status_code == 200
    assert len(probe.reads) == 1
    assert probe.writes == []


async def test_forged_and_malformed_cookies_give_a_new_session(
    session_app: FastAPI, client: AsyncClient, probe: SessionProbe
) -> None:
    await start_session(client)
    real = client.cookies[COOKIE]
    forged = TokenSigner(["not the server's key"]).sign(session_token(client))
    bad_values = (forged, real[:-1] + "x", "garbage", "a" * 5000, real + real)
    for value in bad_values:
        client.cookies.clear()
        client.cookies.set(COOKIE, value)
        response = await client.get("/test/session")
        assert response.status_code == 200
        assert response.json() == {}
    assert len(await probe.states()) == 1


@pytest.mark.slow
async def test_idle_timeout_ends_the_session(
    make_app: AppFactory, make_client: ClientFactory
) -> None:
    app = await make_app(session_idle_timeout=1)
    add_test_routes(app)
    client = await make_client(app)
    await start_session(client)
    keep_cookie_forever(client)
    await asyncio.sleep(1.2)
    response = await client.get("/test/session")
    assert response.json() == {}
    assert f"{COOKIE}=;" in response.headers["set-cookie"]


@pytest.mark.slow
async def test_activity_extends_the_idle_timeout(
    make_app: AppFactory, make_client: ClientFactory
) -> None:
    app = await make_app(session_idle_timeout=2)
    add_test_routes(app)
    client = await make_client(app)
    await start_session(client)
    for _ in range(3):
        await asyncio.sleep(0.8)
        assert (await client.get("/test/session")).json() == {"colour": "blue"}


@pytest.mark.slow
async def test_absolute_timeout_ends_even_an_active_session(
    make_app: AppFactory, make_client: ClientFactory
) -> None:
    app = await make_app(session_idle_timeout=60, session_absolute_timeout=1)
    add_test_routes(app)
    client = await make_client(app)
    await start_session(client)
    keep_cookie_forever(client)
    await asyncio.sleep(0.6)
    assert (await client.get("/test/session")).json() == {"colour": "blue"}
    await asyncio.sleep(0.6)
    assert (await client.get("/test/session")).json() == {}


async def test_expired_sessions_are_purged(
    session_app: FastAPI, client: AsyncClient, probe: SessionProbe
) -> None:
    await start_session(client)
    async with session_app.state.sessionmaker.begin() as db:
        assert await SessionStore(db).purge_expired(time.time()) == 0
        assert await SessionStore(db).purge_expired(time.time() + 86400 * 2) == 1
    assert await probe.states() == []
