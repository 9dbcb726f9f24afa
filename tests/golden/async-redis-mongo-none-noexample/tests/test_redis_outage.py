"""Redis going away and coming back, with a private redis-server of the test's own."""

import asyncio
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator
from typing import Any

import pytest
from httpx import AsyncClient
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

from svc_async_redis_mongo_none_noex.sessions.deps import CurrentSession

from .conftest import AppFactory, ClientFactory

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]


class RedisServer:
    """A throwaway redis-server on a free port of 127.0.0.1."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def spawn(self) -> None:
        self.process = subprocess.Popen(
            [
                *("redis-server", "--bind", "127.0.0.1", "--port", str(self.port)),
                *("--save", "", "--appendonly", "no"),
            ],
            stdout=subprocess.DEVNULL,
        )

    async def start(self) -> None:
        self.spawn()
        client = Redis.from_url(self.url)
        try:
            for _ in range(100):
                try:
                    await client.ping()
                    return
                except RedisConnectionError:
                    await asyncio.sleep(0.05)
            raise RuntimeError("redis-server did not start")
        finally:
            await client.aclose()

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
async def private_redis() -> AsyncIterator[RedisServer]:
    server = RedisServer()
    await server.start()
    yield server
    server.stop()


async def start_session(client: AsyncClient) -> int:
    """A request that must write a session; returns its status."""
    response = await client.post("/test/session", json={"colour": "blue"})
    if response.status_code == 503:
        assert response.json() == {"detail": "Session store unavailable"}
    return response.status_code


async def test_an_outage_is_503_and_the_service_recovers(
    make_app: AppFactory, make_client: ClientFactory, private_redis: RedisServer
) -> None:
    app = await make_app(redis_url=private_redis.url)

    @app.post("/test/session")
    async def write(values: dict[str, Any], session: CurrentSession) -> dict[str, Any]:
        session.update(values)
        return dict(session)

    client = await make_client(app, raise_app_exceptions=False)
    assert (await client.get("/health")).status_code == 200
    assert await start_session(client) == 200

    private_redis.stop()
    health = await client.get("/health")
    assert health.status_code == 503
    assert health.json() == {"status": "unavailable", "database": "ok", "sessions": "unavailable"}
    assert await start_session(client) == 503

    await private_redis.start()
    assert (await client.get("/health")).status_code == 200
    assert await start_session(client) == 200
