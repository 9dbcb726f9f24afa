"""Fixtures: a migrated database on the server, emptied after every test, the app, and clients.

Tests talk HTTP to the ASGI app through httpx, over https so that the
`Secure` session cookie is exercised as in production.
"""

import contextlib
import json
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

import pytest
from alembic import command
from alembic.config import Config
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from pydantic_settings import BaseSettings, SettingsConfigDict
from redis import Redis
from redis.client import Pipeline
from redis.exceptions import RedisError
from sqlalchemy import URL, Executable, create_engine, make_url
from sqlalchemy.exc import DBAPIError

from svc_sync_redis_postgres_jwt_ex.app import create_app
from svc_sync_redis_postgres_jwt_ex.auth import passwords
from svc_sync_redis_postgres_jwt_ex.config import Settings
from svc_sync_redis_postgres_jwt_ex.database_url import (
    DEFAULT_DATABASE_URL,
    normalize_database_url,
)
from svc_sync_redis_postgres_jwt_ex.db import Base
from svc_sync_redis_postgres_jwt_ex.sessions.session import SessionState

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


def migrate(url: str) -> None:
    """Bring the database at `url` to the latest schema with Alembic."""
    config = Config(ROOT / "alembic.ini")
    config.set_main_option("sqlalchemy.url", url)
    command.upgrade(config, "head")


def run_admin(url: URL, *statements: str) -> None:
    """Run statements outside any transaction (CREATE/DROP DATABASE need that)."""
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        for statement in statements:
            connection.exec_driver_sql(statement)
    engine.dispose()


@pytest.fixture(scope="session")
def server_url() -> URL:
    """The server named by DATABASE_URL (its database is left alone); the run stops
    at once when that server cannot be used."""
    url = make_url(normalize_database_url(os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL)))
    try:
        run_admin(url, "SELECT 1")
    except (DBAPIError, OSError) as exc:
        shown = url.render_as_string(hide_password=True)
        stop_unreachable("PostgreSQL server", shown, "DATABASE_URL", "postgres", exc)
    return url


@pytest.fixture(scope="session")
def migrated_database(server_url: URL) -> Iterator[URL]:
    """A database of this test run's own, migrated by Alembic, dropped at the end."""
    name = f"test_svc_sync_redis_postgres_jwt_ex_{secrets.token_hex(4)}"
    run_admin(server_url, f"CREATE DATABASE {name}")
    url = server_url.set(database=name)
    try:
        migrate(url.render_as_string(hide_password=False))
        yield url
    finally:
        run_admin(server_url, f"DROP DATABASE IF EXISTS {name}")


@pytest.fixture
def database_url(migrated_database: URL) -> Iterator[str]:
    """The run's database, emptied after each test: tests share no state."""
    yield migrated_database.render_as_string(hide_password=False)
    tables = ", ".join(table.name for table in Base.metadata.sorted_tables)
    run_admin(migrated_database, f"TRUNCATE {tables} RESTART IDENTITY CASCADE")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis named by REDIS_URL; the run stops at once when it cannot be used."""
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    client = Redis.from_url(url)
    try:
        client.ping()
    except (RedisError, OSError) as exc:
        stop_unreachable("Redis server", masked(url), "REDIS_URL", "redis", exc)
    finally:
        client.close()
    return url


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key namespace of this test's own on the Redis named by REDIS_URL,
    deleted afterwards."""
    prefix = f"test:svc_sync_redis_postgres_jwt_ex:{secrets.token_hex(6)}:"
    yield prefix
    client = Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"{prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def settings(database_url: str, redis_prefix: str) -> Settings:
    # Not from `.env`: its local settings (COOKIE_SECURE=false) are not the tests'.
    return Settings(
        _env_file=None,
        environment="test",
        database_url=database_url,
        redis_prefix=redis_prefix,
        secret_key=[TEST_KEY],
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
        self.maker = app.state.sessionmaker

    async def scalar(self, statement: Executable) -> Any:
        with self.maker() as db:
            return db.scalar(statement)

    async def scalars(self, statement: Executable) -> list[Any]:
        with self.maker() as db:
            return list(db.scalars(statement))

    async def execute(self, statement: Executable) -> None:
        with self.maker.begin() as db:
            db.execute(statement)


@pytest.fixture
def database(app: FastAPI) -> Database:
    return Database(app)


class SessionProbe:
    """Looks into the session store, and records what requests ask of it."""

    READS = ("GET", "MGET", "SMEMBERS")

    def __init__(self, app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
        self.redis: Redis = app.state.redis
        self.prefix: str = app.state.settings.redis_prefix
        # Every command the app sends to Redis; a pipeline counts as one.
        self.operations: list[str] = []
        execute_command: Any = Redis.execute_command
        execute_pipeline: Any = Pipeline.execute

        def record_command(client: Redis, *args: Any, **options: Any) -> Any:
            self.operations.append(str(args[0]).upper())
            return execute_command(client, *args, **options)

        def record_pipeline(pipeline: Pipeline, *args: Any, **options: Any) -> Any:
            self.operations.append("PIPELINE")
            return execute_pipeline(pipeline, *args, **options)

        monkeypatch.setattr(Redis, "execute_command", record_command)
        monkeypatch.setattr(Pipeline, "execute", record_pipeline)

    async def states(self) -> list[SessionState]:
        keys = [key for key in self.redis.scan_iter(f"{self.prefix}session:*")]
        raws = self.redis.mget(keys) if keys else []
        return [SessionState(**json.loads(raw)) for raw in raws if raw is not None]

    @property
    def reads(self) -> list[str]:
        return [op for op in self.operations if op in self.READS]

    @property
    def writes(self) -> list[str]:
        return [op for op in self.operations if op not in self.READS]


@pytest.fixture
def probe(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> SessionProbe:
    return SessionProbe(app, monkeypatch)


async def register(client: AsyncClient, email: str, password: str = "correct horse") -> int:
    response = await client.post("/auth/register", json={"email": email, "password": password})
    assert response.status_code == 201, response.text
    user_id: int = response.json()["id"]
    return user_id


async def login(client: AsyncClient, email: str, password: str = "correct horse") -> dict[str, Any]:
    """Get tokens; the client sends the access token from then on. Returns the pair."""
    response = await client.post("/auth/token", data={"username": email, "password": password})
    assert response.status_code == 200, response.text
    tokens: dict[str, Any] = response.json()
    client.headers["Authorization"] = f"Bearer {tokens['access_token']}"
    return tokens


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
