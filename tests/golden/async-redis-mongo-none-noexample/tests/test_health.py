import logging
from urllib.parse import urlsplit

import pytest
from httpx import AsyncClient

from svc_async_redis_mongo_none_noex.sessions.deps import CurrentSession

from .conftest import AppFactory, ClientFactory
from .fake_mongo import fake_mongo_server

pytestmark = pytest.mark.anyio


def warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The lines logged at WARNING and above."""
    return [record for record in caplog.records if record.levelno >= logging.WARNING]


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
    # Back on the same port: the driver reconnects by itself.
    with fake_mongo_server(urlsplit(url).port or 0):
        assert (await client.get("/health")).status_code == 200


async def test_a_redis_index_out_of_range_is_503(
    make_app: AppFactory,
    make_client: ClientFactory,
    redis_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = await make_app(redis_url=urlsplit(redis_url)._replace(path="/99").geturl())

    @app.post("/test/session")
    async def write(session: CurrentSession) -> dict[str, str]:
        session["colour"] = "blue"
        return {}

    client = await make_client(app, raise_app_exceptions=False)
    health = await client.get("/health")
    assert health.status_code == 503
    assert health.json() == {"status": "unavailable", "database": "ok", "sessions": "unavailable"}
    caplog.clear()
    response = await client.post("/test/session")
    assert response.status_code == 503
    assert response.json() == {"detail": "Session store unavailable"}
    # One line says why and where, without a traceback.
    [line] = warnings(caplog)
    assert line.exc_info is None
    redis = urlsplit(redis_url)
    assert f"{redis.hostname}:{redis.port or 6379}" in line.getMessage()
    # The later failures of that outage log nothing more.
    caplog.clear()
    assert (await client.post("/test/session")).status_code == 503
    assert warnings(caplog) == []
