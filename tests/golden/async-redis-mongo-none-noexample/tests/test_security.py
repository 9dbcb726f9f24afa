"""The rules of SECURITY.md, each proven here (or in the test SECURITY.md names)."""

import asyncio
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from pydantic import ValidationError
from starlette.types import Message

from svc_async_redis_mongo_none_noex.config import Settings
from svc_async_redis_mongo_none_noex.sessions.deps import CurrentSession
from svc_async_redis_mongo_none_noex.sessions.middleware import TokenSigner
from svc_async_redis_mongo_none_noex.sessions.session import new_token
from svc_async_redis_mongo_none_noex.sessions.store import SessionStore

from .conftest import (
    PRODUCTION,
    ROOT,
    TEST_KEY,
    AppFactory,
    ClientFactory,
    SessionProbe,
)

pytestmark = pytest.mark.anyio
COOKIE = "__Host-session"
NEW_KEY = "the-next-secret-key-0123456789abcdefghijklmnopqrstu"


def add_test_routes(app: FastAPI) -> None:
    """Routes of the tests' own: write, read and delete the session, fail after using it."""

    @app.post("/test/session")
    async def write(values: dict[str, Any], session: CurrentSession) -> dict[str, Any]:
        for key, value in values.items():
            session[key] = value
        return dict(session)

    @app.get("/test/session")
    async def read(session: CurrentSession) -> dict[str, Any]:
        return dict(session)

    @app.post("/test/destroy", status_code=204)
    async def destroy(session: CurrentSession) -> None:
        session.destroy()

    @app.get("/test/error")
    async def error(session: CurrentSession) -> None:
        raise RuntimeError("a bug in a route that used the session")


@pytest.fixture
async def test_app(app: FastAPI) -> FastAPI:
    add_test_routes(app)
    return app


async def make_test_app(make_app: AppFactory, **overrides: Any) -> FastAPI:
    app = await make_app(**overrides)
    add_test_routes(app)
    return app


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


# --------------------------------------------------------------------- 1. session ids


async def test_session_ids_have_256_random_bits_and_never_repeat(
    test_app: FastAPI, make_client: ClientFactory
) -> None:
    tokens = set()
    for _ in range(20):
        client = await make_client()
        response = await client.post("/test/session", json={"n": 1})
        token = TokenSigner([TEST_KEY]).unsign(response.cookies[COOKIE])
        assert token is not None
        assert len(token) == 43  # base64url of 32 bytes from `secrets`
        tokens.add(token)
    assert len(tokens) == 20


async def test_a_well_formed_id_the_server_never_issued_gets_a_new_session(
    test_app: FastAPI, client: AsyncClient, probe: SessionProbe
) -> None:
    """A correctly signed cookie is not enough: the id must be in the store."""
    planted = TokenSigner([TEST_KEY]).sign(new_token())
    client.cookies.set(COOKIE, planted)
    response = await client.post("/test/session", json={"colour": "blue"})
    assert response.status_code == 200
    issued = response.cookies[COOKIE]
    assert issued != planted
    [state] = await probe.states()
    assert state.data == {"colour": "blue"}


# --------------------------------------------------------------------- 1. transport


async def test_without_cookie_secure_the_cookie_is_plain_but_still_http_only(
    make_app: AppFactory, make_client: ClientFactory
) -> None:
    client = await make_client(await make_test_app(make_app, cookie_secure=False))
    header = (await client.post("/test/session", json={"n": 1})).headers["set-cookie"]
    assert header.startswith("session=")
    attributes = [part.strip().lower() for part in header.split(";")[1:]]
    assert "httponly" in attributes
    assert "samesite=lax" in attributes
    assert "path=/" in attributes
    assert "secure" not in attributes
    assert not any(attribute.startswith("domain") for attribute in attributes)


async def test_the_id_is_never_read_from_the_query_string_or_body(
    test_app: FastAPI, client: AsyncClient, make_client: ClientFactory
) -> None:
    await client.post("/test/session", json={"colour": "blue"})
    value = client.cookies[COOKIE]
    thief = await make_client()
    for name in (COOKIE, "session"):
        assert (await thief.get("/test/session", params={name: value})).json() == {}
    response = await thief.post("/test/session", json={COOKIE: value, "session": value})
    assert "colour" not in response.json()


async def test_session_secrets_reach_no_log_header_or_error_body(
    test_app: FastAPI, make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = await make_client(raise_app_exceptions=False)
    await client.post("/test/session", json={"n": 1})
    token = TokenSigner([TEST_KEY]).unsign(client.cookies[COOKIE])
    assert token is not None
    secrets = [client.cookies[COOKIE], token]
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
    responses = [
        await client.post("/test/session", json={"n": 1}),
        await client.get("/test/session"),
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
async def test_odd_cookies_are_refused_without_a_500_or_injected_headers(
    test_app: FastAPI, value: bytes
) -> None:
    header = (b"cookie", COOKIE.encode() + b"=" + value)
    start = await raw_get(test_app, "/test/session", [header])
    assert start["status"] == 200, "an anonymous session"
    for _name, header_value in start["headers"]:
        assert b"\r" not in header_value
        assert b"\n" not in header_value
        assert b"injected" not in header_value


# --------------------------------------------------------------------- 2. cross-site requests


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "https://testserver.evil.example"},
        {"Origin": "null"},
        {"Origin": "http://testserver"},
        {"Origin": "https://testserver:8443"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ],
    ids=[
        "origin",
        "lookalike-origin",
        "null-origin",
        "other-scheme",
        "other-port",
        "cross-site",
        "same-site",
    ],
)
async def test_cross_site_unsafe_requests_are_refused(
    test_app: FastAPI, client: AsyncClient, probe: SessionProbe, headers: dict[str, str]
) -> None:
    response = await client.post("/test/session", json={"n": 1}, headers=headers)
    assert response.status_code == 403
    assert "set-cookie" not in response.headers
    assert await probe.states() == []
    assert (await client.get("/test/session", headers=headers)).status_code == 200, "reads pass"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Origin": "https://testserver"},
        {"Origin": "https://TestServer:443/"},
        {"Sec-Fetch-Site": "same-origin"},
        {"Sec-Fetch-Site": "none"},
        {"Origin": "https://app.example.com", "Sec-Fetch-Site": "cross-site"},
    ],
    ids=[
        "no-headers",
        "same-origin",
        "same-origin-spelled-out",
        "fetch-same-origin",
        "user-typed",
        "allowed-origin",
    ],
)
async def test_same_site_allowed_and_non_browser_requests_pass(
    make_app: AppFactory, make_client: ClientFactory, headers: dict[str, str]
) -> None:
    app = await make_test_app(make_app, allowed_origins=["https://app.example.com"])
    client = await make_client(app)
    assert (await client.post("/test/session", json={"n": 1}, headers=headers)).status_code == 200


async def test_several_origin_headers_are_refused(test_app: FastAPI, client: AsyncClient) -> None:
    headers = [("Origin", "https://testserver"), ("Origin", "https://evil.example")]
    response = await client.post("/test/session", json={"n": 1}, headers=headers)
    assert response.status_code == 403


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


async def test_rotating_the_secret_key_logs_nobody_out(
    make_app: AppFactory, make_client: ClientFactory
) -> None:
    client = await make_client(await make_test_app(make_app))
    await client.post("/test/session", json={"colour": "blue"})
    old_cookie = client.cookies[COOKIE]
    rotated = await make_test_app(make_app, secret_key=[NEW_KEY, TEST_KEY])
    moved = await make_client(rotated)
    moved.cookies.set(COOKIE, old_cookie)
    assert (await moved.get("/test/session")).json() == {"colour": "blue"}
    issued = (await (await make_client(rotated)).post("/test/session", json={"n": 1})).cookies
    assert TokenSigner([NEW_KEY]).unsign(issued[COOKIE]) is not None, "the new key signs"
    assert TokenSigner([TEST_KEY]).unsign(issued[COOKIE]) is None
    retired = await make_client(await make_test_app(make_app, secret_key=[NEW_KEY]))
    retired.cookies.set(COOKIE, old_cookie)
    assert (await retired.get("/test/session")).json() == {}, "a dropped key verifies nothing"


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
    assert (await client.post("/test/session", json={"small": "x"})).status_code == 200
    big = await client.post("/test/session", json={"blob": "x" * 1000})
    assert big.status_code == 413
    assert "set-cookie" not in big.headers
    assert [state.data for state in await probe.states()] == [{"small": "x"}]


# --------------------------------------------------------------------- 6. parallel requests


def hold_session_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the next two requests both load the session before either saves it."""
    barrier = asyncio.Barrier(2)
    load = SessionStore.get

    async def load_then_wait(store: SessionStore, key: str, now: float) -> Any:
        state = await load(store, key, now)
        await asyncio.wait_for(barrier.wait(), 30)
        return state

    monkeypatch.setattr(SessionStore, "get", load_then_wait)


async def test_concurrent_requests_changing_different_keys_keep_both(
    test_app: FastAPI, client: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    await client.post("/test/session", json={"start": 0})
    hold_session_loads(monkeypatch)
    await asyncio.gather(
        client.post("/test/session", json={"a": 1}),
        client.post("/test/session", json={"b": 2}),
    )
    monkeypatch.undo()
    assert (await client.get("/test/session")).json() == {"start": 0, "a": 1, "b": 2}


async def test_a_session_deleted_meanwhile_is_not_brought_back(
    test_app: FastAPI, client: AsyncClient, probe: SessionProbe, monkeypatch: pytest.MonkeyPatch
) -> None:
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
