"""What a logged-in read costs the database: one statement, outside any transaction."""

from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import event
from sqlalchemy.engine import Connection
from starlette.concurrency import run_in_threadpool

from svc_sync_redis_postgres_jwt_ex import db

from .conftest import AppFactory, login, register

pytestmark = pytest.mark.anyio


@pytest.fixture
async def app(make_app: AppFactory) -> FastAPI:
    """The app without its mail sender: its reads of the outbox (after a
    registration) are not the requests' statements."""
    app = await make_app()
    await app.state.mail_sender.stop()
    return app


class Statements:
    """The statements the app's engine sends, each with the connection's
    isolation level ("AUTOCOMMIT", or "transaction" for the default)."""

    def __init__(self, app: FastAPI) -> None:
        self.engine = app.state.engine
        self.sent: list[tuple[str, str]] = []
        event.listen(self.engine, "before_cursor_execute", self.record)

    def record(self, connection: Connection, _cursor: Any, statement: str, *_args: Any) -> None:
        level = connection.get_execution_options().get("isolation_level", "transaction")
        self.sent.append((statement.split()[0], level))

    def close(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self.record)


async def test_who_am_i_is_one_statement(client: AsyncClient, app: FastAPI) -> None:
    """The session comes from Redis; the user is one SELECT, in autocommit
    mode: no BEGIN, no COMMIT."""
    await register(client, "ada@example.com")
    await login(client, "ada@example.com")
    statements = Statements(app)
    try:
        response = await client.get("/auth/me")
    finally:
        statements.close()
    assert response.status_code == 200
    assert statements.sent == [("SELECT", "AUTOCOMMIT")]


async def test_a_request_that_writes_nothing_ends_without_a_worker_thread(
    client: AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`get_db` hands its end (hooks, commit) to a worker thread only when
    there is something to write."""
    await register(client, "ada@example.com")
    await login(client, "ada@example.com")
    handed: list[str] = []

    async def counted(func: Callable[..., Any], *args: Any) -> Any:
        handed.append(func.__name__)
        return await run_in_threadpool(func, *args)

    monkeypatch.setattr(db, "run_in_threadpool", counted)
    response = await client.get("/auth/me")
    assert response.status_code == 200
    assert handed == []
