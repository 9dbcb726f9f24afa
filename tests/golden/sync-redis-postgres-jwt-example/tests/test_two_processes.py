"""Two uvicorn processes of this service share sessions through the store."""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import ROOT, TEST_KEY

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def servers(
    database_url: str,
    redis_prefix: str,
    tmp_path: Path,
) -> Iterator[list[str]]:
    """Two uvicorn processes of the app on one database and Redis."""
    env = os.environ | {
        "PYTHONPATH": str(ROOT / "src"),
        "ENVIRONMENT": "test",
        "DATABASE_URL": database_url,
        "REDIS_PREFIX": redis_prefix,
        "SECRET_KEY": TEST_KEY,
    }
    urls: list[str] = []
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(2):
            port = free_port()
            command = [sys.executable, "-m", "uvicorn", "svc_sync_redis_postgres_jwt_ex.main:app"]
            log = (tmp_path / f"uvicorn-{port}.log").open("wb")
            processes.append(
                subprocess.Popen(
                    [*command, "--host", "127.0.0.1", "--port", str(port)],
                    env=env,
                    cwd=tmp_path,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
            urls.append(f"http://127.0.0.1:{port}")
        for url in urls:
            wait_until_healthy(url)
        yield urls
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)


def wait_until_healthy(url: str) -> None:
    # Generous: on a loaded machine two fresh interpreters can take a while to start.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not become healthy")


def test_a_session_made_on_one_process_is_valid_on_the_other(servers: list[str]) -> None:
    first, second = servers
    with httpx.Client() as client:
        credentials = {"email": "ada@example.com", "password": "correct horse"}
        assert client.post(f"{first}/auth/register", json=credentials).status_code == 201
        form = {"username": credentials["email"], "password": credentials["password"]}
        tokens = client.post(f"{first}/auth/token", data=form).json()
        bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
        assert client.get(f"{second}/auth/me", headers=bearer).status_code == 200
        assert client.post(f"{second}/auth/logout", headers=bearer).status_code == 204
        assert client.get(f"{first}/auth/me", headers=bearer).status_code == 401
