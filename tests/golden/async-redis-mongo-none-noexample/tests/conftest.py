"""Fixtures: a MongoDB database for every test, the app, and clients.

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
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from pydantic_settings import BaseSettings, SettingsConfigDict
from pymongo import MongoClient
from pymongo.errors import PyMongoError
from redis import Redis as SyncRedis
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import RedisError

from svc_async_redis_mongo_none_noex.app import create_app
from svc_async_redis_mongo_none_noex.config import Settings
from svc_async_redis_mongo_none_noex.sessions.session import SessionState

from .fake_mongo import fake_mongo_server

ROOT = Path(__file__).resolve().parents[1]
TEST_KEY = "test-secret-key-0123456789abcdefghijklmnopqrstuvwxyz"
# The settings of production.
PRODUCTION: dict[str, Any] = {"environment": "prod"}
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
    name = f"test_svc_async_redis_mongo_none_noex_{secrets.token_hex(4)}"
    yield urlsplit(mongodb_url)._replace(path=f"/{name}").geturl()
    client: MongoClient[dict[str, Any]] = MongoClient(mongodb_url)
    client.drop_database(name)
    client.close()


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The Redis named by REDIS_URL; the run stops at once when it cannot be used."""
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    client = SyncRedis.from_url(url)
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
    prefix = f"test:svc_async_redis_mongo_none_noex:{secrets.token_hex(6)}:"
    yield prefix
    client = SyncRedis.from_url(redis_url)
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
        self.database = app.state.mongo.database

    async def documents(self, collection: str, query: dict[str, Any] | None = None) -> list[Any]:
        cursor = self.database[collection].find(query or {})
        documents: list[Any] = await cursor.to_list()
        return documents


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

        async def record_command(client: Redis, *args: Any, **options: Any) -> Any:
            self.operations.append(str(args[0]).upper())
            return await execute_command(client, *args, **options)

        async def record_pipeline(pipeline: Pipeline, *args: Any, **options: Any) -> Any:
            self.operations.append("PIPELINE")
            return await execute_pipeline(pipeline, *args, **options)

        monkeypatch.setattr(Redis, "execute_command", record_command)
        monkeypatch.setattr(Pipeline, "execute", record_pipeline)

    async def states(self) -> list[SessionState]:
        keys = [key async for key in self.redis.scan_iter(f"{self.prefix}session:*")]
        raws = await self.redis.mget(keys) if keys else []
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
