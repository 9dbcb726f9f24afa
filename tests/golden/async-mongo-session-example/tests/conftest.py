"""Fixtures: a MongoDB database for every test, the app, and clients.

Tests talk HTTP to the ASGI app through httpx, over https so that the
`Secure` session cookie is exercised as in production.
"""

import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from pydantic_settings import BaseSettings, SettingsConfigDict
from pymongo import MongoClient, monitoring
from pymongo.errors import PyMongoError

from svc_async_mongo_session_ex.app import create_app
from svc_async_mongo_session_ex.auth import passwords
from svc_async_mongo_session_ex.config import Settings
from svc_async_mongo_session_ex.sessions.session import SessionState
from svc_async_mongo_session_ex.sessions.store import session_state

from .fake_mongo import fake_mongo_server

ROOT = Path(__file__).resolve().parents[1]
TEST_KEY = "test-secret-key-0123456789abcdefghijklmnopqrstuvwxyz"
# The settings of production: it needs an SMTP server (these tests send it nothing).
PRODUCTION: dict[str, Any] = {"environment": "prod", "smtp_url": "smtp://127.0.0.1:25"}
FROM_DOTENV: set[str] = set()


class ServerURLs(BaseSettings):
    """The servers the tests use, found as the app's Settings finds its own: in the
    environment, else in `.env`. The other settings of `.env` are local ones
    (COOKIE_SECURE=false...), not the tests'."""

    model_config = SettingsConfigDict(env_file=ROOT / ".env", extra="ignore")

    database_url: str = ""
    redis_url: str = ""
    mongodb_url: str = ""


def pytest_configure(config: pytest.Config) -> None:
    """Put the server URLs of `.env` into os.environ (the environment wins), so that
    the app's Settings and the processes that tests start use the same servers."""
    in_environment = {name.upper() for name in os.environ}
    for field, value in ServerURLs().model_dump().items():
        name = field.upper()
        if value and name not in in_environment:
            os.environ[name] = value
            FROM_DOTENV.add(name)


def stop_unreachable(
    what: str, url: str, name: str, service: str, error: BaseException
) -> NoReturn:
    """End the run with one line, instead of an error for every test that needs the server."""
    if name in FROM_DOTENV:
        origin = "from .env"
    elif name in os.environ:
        origin = "from the environment"
    else:
        origin = f"the default: {name} is unset"
    lines = str(getattr(error, "orig", None) or error).strip().splitlines()
    reason = (lines[0] if lines else type(error).__name__)[:200].rstrip(". ")
    pytest.exit(
        f"Cannot use the {what} at {url} ({name} {origin}): {reason}. Start it with "
        f"`docker compose up -d --wait {service}`, or set {name} (in .env or the environment).",
        returncode=pytest.ExitCode.INTERRUPTED,
    )


def masked(url: str) -> str:
    """`url` with its password replaced by ***."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    userinfo, _, hosts = parts.netloc.rpartition("@")
    user = userinfo.partition(":")[0]
    return parts._replace(netloc=f"{user}:***@{hosts}").geturl()


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def cheap_password_hashing(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2 at its lowest cost, for tests that are not about its cost: the
    production settings take about 0.2 s of CPU per hash, which the suite's
    hundreds of logins would spend for nothing. A test marked
    `real_password_hashing` keeps them (the timing test does)."""
    if request.node.get_closest_marker("real_password_hashing"):
        return
    hasher = PasswordHash((Argon2Hasher(time_cost=1, memory_cost=8, parallelism=1),))
    monkeypatch.setattr(passwords, "_hasher", hasher)
    monkeypatch.setattr(passwords, "_DUMMY_HASH", hasher.hash("an unguessable placeholder"))


def pytest_report_header() -> str:
    if os.environ.get("MONGODB_URL"):
        return "MongoDB: the server at MONGODB_URL"
    return "MongoDB: the in-process fake of tests/fake_mongo.py (set MONGODB_URL for a server)"


@pytest.fixture(scope="session")
def mongodb_url() -> Iterator[str]:
    """The MongoDB server named by MONGODB_URL, or else an in-process fake
    that speaks MongoDB's wire protocol (see tests/fake_mongo.py)."""
    url = os.environ.get("MONGODB_URL")
    if url:
        client: MongoClient[dict[str, Any]] = MongoClient(url, serverSelectionTimeoutMS=5000)
        try:
            client.admin.command("ping")
        except PyMongoError as exc:
            stop_unreachable("MongoDB server", masked(url), "MONGODB_URL", "mongo", exc)
        finally:
            client.close()
        yield url
        return
    with fake_mongo_server() as fake_url:
        yield fake_url


@pytest.fixture
def database_url(mongodb_url: str) -> Iterator[str]:
    """A database of this test's own, dropped afterwards: tests share no state."""
    name = f"test_svc_async_mongo_session_ex_{secrets.token_hex(4)}"
    yield urlsplit(mongodb_url)._replace(path=f"/{name}").geturl()
    client: MongoClient[dict[str, Any]] = MongoClient(mongodb_url)
    client.drop_database(name)
    client.close()


@pytest.fixture
def settings(database_url: str) -> Settings:
    # Not from `.env`: its local settings (COOKIE_SECURE=false) are not the tests'.
    return Settings(
        _env_file=None, environment="test", database_url=database_url, secret_key=[TEST_KEY]
    )


AppFactory = Callable[..., Awaitable[FastAPI]]


@pytest.fixture
async def make_app(settings: Settings) -> AsyncIterator[AppFactory]:
    """Start apps (lifespan included) with settings overridden per test."""
    async with contextlib.AsyncExitStack() as stack:

        async def make(**overrides: Any) -> FastAPI:
            app = create_app(Settings.model_validate(settings.model_dump() | overrides))
            await stack.enter_async_context(app.router.lifespan_context(app))
            return app

        yield make


@pytest.fixture
async def app(make_app: AppFactory) -> FastAPI:
    return await make_app()


ClientFactory = Callable[..., Awaitable[AsyncClient]]


@pytest.fixture
async def make_client(app: FastAPI) -> AsyncIterator[ClientFactory]:
    """New HTTP clients, each with its own cookie jar (a separate browser)."""
    async with contextlib.AsyncExitStack() as stack:

        async def make(target: FastAPI = app, raise_app_exceptions: bool = True) -> AsyncClient:
            transport = ASGITransport(target, raise_app_exceptions=raise_app_exceptions)
            client = AsyncClient(transport=transport, base_url="https://testserver")
            return await stack.enter_async_context(client)

        yield make


@pytest.fixture
async def client(make_client: ClientFactory) -> AsyncClient:
    return await make_client()


class Database:
    """Direct access to the app's database, to check what requests stored."""

    def __init__(self, app: FastAPI) -> None:
        self.database = app.state.mongo.database

    async def documents(self, collection: str, query: dict[str, Any] | None = None) -> list[Any]:
        cursor = self.database[collection].find(query or {})
        documents: list[Any] = await cursor.to_list()
        return documents


@pytest.fixture
def database(app: FastAPI) -> Database:
    return Database(app)


class CommandLog(monitoring.CommandListener):
    """Records the commands that clients made in this process send about sessions."""

    def __init__(self) -> None:
        self.on_sessions: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command.get(event.command_name) == "sessions":
            self.on_sessions.append(event.command_name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


# Registered before any client exists, so every client of the app reports.
COMMANDS = CommandLog()
monitoring.register(COMMANDS)


class SessionProbe:
    """Looks into the session store, and records what requests ask of it."""

    READS = ("find",)

    def __init__(self, app: FastAPI) -> None:
        self.collection = app.state.mongo.database.sessions
        self.operations = COMMANDS.on_sessions
        self.operations.clear()

    async def states(self) -> list[SessionState]:
        cursor = self.collection.find()
        documents = await cursor.to_list()
        return [state for document in documents if (state := session_state(document))]

    @property
    def reads(self) -> list[str]:
        return [op for op in self.operations if op in self.READS]

    @property
    def writes(self) -> list[str]:
        return [op for op in self.operations if op not in self.READS]


@pytest.fixture
def probe(app: FastAPI) -> SessionProbe:
    return SessionProbe(app)


async def register(client: AsyncClient, email: str, password: str = "correct horse") -> int:
    response = await client.post("/auth/register", json={"email": email, "password": password})
    assert response.status_code == 201, response.text
    user_id: int = response.json()["id"]
    return user_id


async def login(client: AsyncClient, email: str, password: str = "correct horse") -> str:
    """Log in; the client sends the CSRF token from then on. Returns it."""
    response = await client.post("/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    token: str = response.json()["csrf_token"]
    client.headers["X-CSRF-Token"] = token
    return token


@pytest.fixture
async def make_shopper(make_client: ClientFactory) -> Callable[..., Awaitable[AsyncClient]]:
    """Clients logged in as new users, ready to call the shop (options as `make_client`'s)."""
    count = 0

    async def make(**client_options: Any) -> AsyncClient:
        nonlocal count
        count += 1
        client = await make_client(**client_options)
        await register(client, f"shopper{count}@example.com")
        await login(client, f"shopper{count}@example.com")
        return client

    return make


@pytest.fixture
async def shopper(make_shopper: Callable[..., Awaitable[AsyncClient]]) -> AsyncClient:
    return await make_shopper()
