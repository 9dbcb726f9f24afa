"""What a logged-in read costs the database: one statement, outside any transaction."""

from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import event
from sqlalchemy.engine import Connection

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
        self.engine = app.state.engine.sync_engine
        self.sent: list[tuple[str, str]] = []
        event.listen(self.engine, "before_cursor_execute", self.record)

    def record(self, connection: Connection, _cursor: Any, statement: str, *_args: Any) -> None:
        level = connection.get_execution_options().get("isolation_level", "transaction")
        self.sent.append((statement.split()[0], level))

    def close(self) -> None:
        event.remove(self.engine, "before_cursor_execute", self.record)


async def test_who_am_i_is_one_statement(client: AsyncClient, app: FastAPI) -> None:
    """The session and its user come in one SELECT (a join), in autocommit
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
