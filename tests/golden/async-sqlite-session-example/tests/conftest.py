"""Fixtures: a migrated database copy for every test, the app, and clients.

Tests talk HTTP to the ASGI app through httpx, over https so that the
`Secure` session cookie is exercised as in production.
"""

import contextlib
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from sqlalchemy import Executable, event, select

from svc_async_sqlite_session_ex.app import create_app
from svc_async_sqlite_session_ex.auth import passwords
from svc_async_sqlite_session_ex.config import Settings
from svc_async_sqlite_session_ex.models import SessionRecord
from svc_async_sqlite_session_ex.sessions.session import SessionState

ROOT = Path(__file__).resolve().parents[1]
TEST_KEY = "test-secret-key-0123456789abcdefghijklmnopqrstuvwxyz"
# The settings of production: it needs an SMTP server (these tests send it nothing).
PRODUCTION: dict[str, Any] = {"environment": "prod", "smtp_url": "smtp://127.0.0.1:25"}


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


@pytest.fixture(scope="session")
def migrated_database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file brought to the latest schema by the Alembic migrations."""
    path = tmp_path_factory.mktemp("schema") / "migrated.db"
    migrate(f"sqlite:///{path}")
    return path


@pytest.fixture
def database_url(migrated_database: Path, tmp_path: Path) -> str:
    """A private copy of the migrated database: tests share no state."""
    path = tmp_path / "app.db"
    shutil.copy(migrated_database, path)
    return f"sqlite:///{path}"


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
        self.maker = app.state.sessionmaker

    async def scalar(self, statement: Executable) -> Any:
        async with self.maker() as db:
            return await db.scalar(statement)

    async def scalars(self, statement: Executable) -> list[Any]:
        async with self.maker() as db:
            return list(await db.scalars(statement))

    async def execute(self, statement: Executable) -> None:
        async with self.maker.begin() as db:
            await db.execute(statement)


@pytest.fixture
def database(app: FastAPI) -> Database:
    return Database(app)


class SessionProbe:
    """Looks into the session store, and records what requests ask of it."""

    READS = ("SELECT",)

    def __init__(self, app: FastAPI) -> None:
        self.maker = app.state.sessionmaker
        # The first word of every statement that touches the sessions table.
        self.operations: list[str] = []
        event.listen(app.state.engine.sync_engine, "before_cursor_execute", self._record)

    def _record(self, *args: object) -> None:
        statement = str(args[2])
        if "sessions" in statement:
            self.operations.append(statement.split(None, 1)[0].upper())

    async def states(self) -> list[SessionState]:
        async with self.maker() as db:
            rows = (await db.execute(select(SessionRecord.__table__))).mappings()
            return [SessionState(**row) for row in rows]

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
