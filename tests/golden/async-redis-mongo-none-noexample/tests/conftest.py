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
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from pymongo import MongoClient
from redis import Redis as SyncRedis
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from svc_async_redis_mongo_none_noex.app import create_app
from svc_async_redis_mongo_none_noex.config import Settings
from svc_async_redis_mongo_none_noex.sessions.session import SessionState

from .fake_mongo import fake_mongo_server

ROOT = Path(__file__).resolve().parents[1]
TEST_KEY = "test-secret-key-0123456789abcdefghijklmnopqrstuvwxyz"


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


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key namespace of this test's own on the Redis named by REDIS_URL,
    deleted afterwards."""
    prefix = f"test:svc_async_redis_mongo_none_noex:{secrets.token_hex(6)}:"
    yield prefix
    client = SyncRedis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
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
