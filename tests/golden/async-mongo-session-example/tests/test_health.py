import logging
from urllib.parse import urlsplit

import pytest
from httpx import AsyncClient

from .conftest import AppFactory, ClientFactory
from .fake_mongo import fake_mongo_server

pytestmark = pytest.mark.anyio


def warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The lines logged at WARNING and above, but the mail sender's: in the
    background, it may log the same outage."""
    return [
        record
        for record in caplog.records
        if record.levelno >= logging.WARNING and not record.name.endswith("mail.sender")
    ]


async def test_health_ok(client: AsyncClient) -> None:
    for path in ("/health", "/health/ready"):
        response = await client.get(path)
        assert response.status_code == 200
        assert response.json() == {"status": "ok", "database": "ok", "sessions": "ok"}
    live = await client.get("/health/live")
    assert live.status_code == 200
    assert live.json() == {"status": "ok"}


async def test_health_reports_an_unreachable_database_and_recovers(
    make_app: AppFactory,
    make_client: ClientFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with fake_mongo_server() as url:
        app = await make_app(database_url=f"{url}/health")
        client = await make_client(app)
        assert (await client.get("/health")).status_code == 200
    # The server is gone (its port refuses, its connections are cut).
    response = await client.get("/health")
    assert response.status_code == 503
    assert response.json()["database"] == "unavailable"
    assert response.json()["status"] == "unavailable"
    assert (await client.get("/health/ready")).json() == response.json()
    # The process itself is fine: a liveness probe must not restart it.
    assert (await client.get("/health/live")).status_code == 200
    # A route that needs the database answers 503 JSON, not a 500.
    caplog.clear()
    body = {"email": "nobody@example.com", "password": "correct horse"}
    response = await client.post("/auth/register", json=body)
    assert response.status_code == 503
    assert response.json() == {"detail": "Database unavailable"}
    # One line says why and where, without a traceback; later failures of
    # that outage log nothing more.
    [line] = warnings(caplog)
    assert line.exc_info is None
    assert f"{urlsplit(url).hostname}:{urlsplit(url).port}" in line.getMessage()
    caplog.clear()
    assert (await client.post("/auth/register", json=body)).status_code == 503
    assert warnings(caplog) == []
    # Back on the same port: the driver reconnects by itself.
    with fake_mongo_server(urlsplit(url).port or 0):
        assert (await client.get("/health")).status_code == 200
