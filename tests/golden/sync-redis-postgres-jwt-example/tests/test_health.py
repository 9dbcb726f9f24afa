import logging
from urllib.parse import urlsplit

import pytest
from httpx import AsyncClient
from sqlalchemy import make_url

from svc_sync_redis_postgres_jwt_ex.sessions.deps import CurrentSession

from .conftest import AppFactory, ClientFactory

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


@pytest.mark.parametrize("fault", ["nothing listens", "no such database", "no such user"])
async def test_health_reports_an_unreachable_database(
    make_app: AppFactory,
    make_client: ClientFactory,
    database_url: str,
    fault: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = make_url(database_url)
    if fault == "nothing listens":
        # Nothing listens on port 1 of this machine.
        unreachable = url.set(port=1)
    elif fault == "no such database":
        unreachable = url.set(database="no_such_database")
    else:
        unreachable = url.set(username="no_such_user")
    app = await make_app(database_url=unreachable.render_as_string(hide_password=False))
    client = await make_client(app, raise_app_exceptions=False)
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
    # One line says why and where, without a traceback or the password.
    [line] = warnings(caplog)
    assert line.exc_info is None
    assert f"{unreachable.host}:{unreachable.port or url.port}" in line.getMessage()
    assert not url.password or url.password not in caplog.text
    # The later failures of that outage log nothing more.
    caplog.clear()
    assert (await client.post("/auth/register", json=body)).status_code == 503
    assert warnings(caplog) == []


async def test_a_redis_index_out_of_range_is_503(
    make_app: AppFactory,
    make_client: ClientFactory,
    redis_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = await make_app(redis_url=urlsplit(redis_url)._replace(path="/99").geturl())

    @app.post("/test/session")
    def write(session: CurrentSession) -> dict[str, str]:
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
