"""PostgreSQL crashing and starting again under a running service, on a
private cluster (initdb, pg_ctl) of this test module's own."""

import asyncio
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from httpx import AsyncClient

from .conftest import AppFactory, ClientFactory, login, migrate, register

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

# Seconds the service may take to answer again once PostgreSQL accepts connections.
RECOVERY_LIMIT = 5


def server_programs() -> Path | None:
    """The directory of `initdb` and `pg_ctl`: on PATH, or else where Debian
    and Ubuntu put them (/usr/lib/postgresql/<version>/bin), newest first."""
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).parent
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda path: int(path.parts[-3]) if path.parts[-3].isdigit() else 0,
    )
    return versions[-1].parent if versions else None


def as_server_user() -> dict[str, Any]:
    """PostgreSQL refuses to run as root: `subprocess` options that run it as
    the `postgres` OS user then."""
    if os.geteuid() != 0:
        return {}
    try:
        user = pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("run as root, this test needs a `postgres` OS user to run PostgreSQL as")
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def run(command: list[str], directory: Path, user: dict[str, Any]) -> None:
    result = subprocess.run(
        command, cwd=directory, capture_output=True, text=True, check=False, **user
    )
    if result.returncode != 0:
        msg = f"{command[0]} failed: {result.stdout}{result.stderr}"
        raise RuntimeError(msg)


class PrivateServer:
    """A throwaway PostgreSQL cluster on a free port of 127.0.0.1, with trust
    authentication and no fsync (nothing in it needs to survive)."""

    def __init__(self, programs: Path, directory: Path, user: dict[str, Any]) -> None:
        self.programs = programs
        self.directory = directory
        self.user = user
        self.data = directory / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self.running = False
        self.pg("initdb", "--no-sync", "-D", str(self.data), "-U", "postgres", "-A", "trust")

    def pg(self, program: str, *args: str) -> None:
        run([str(self.programs / program), *args], self.directory, self.user)

    def start(self) -> None:
        """Start; returns once the server accepts connections."""
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.directory} -c fsync=off"
        log = str(self.directory / "postgres.log")
        self.pg("pg_ctl", "start", "-w", "-D", str(self.data), "-l", log, "-o", options)
        self.running = True

    def crash(self) -> None:
        """Stop at once, as a crash would: connections die, nothing is flushed."""
        self.pg("pg_ctl", "stop", "-m", "immediate", "-D", str(self.data))
        self.running = False


@pytest.fixture(scope="module")
def private_server() -> Iterator[PrivateServer]:
    """A server migrated by Alembic, for the tests of this module."""
    programs = server_programs()
    if programs is None:
        pytest.skip("needs PostgreSQL's server programs (initdb, pg_ctl)")
    user = as_server_user()
    with tempfile.TemporaryDirectory(prefix="pg-") as name:
        directory = Path(name)
        if user:
            os.chown(directory, user["user"], user["group"])
        server = PrivateServer(programs, directory, user)
        server.start()
        try:
            migrate(server.url)
            yield server
        finally:
            if server.running:
                server.crash()


class Service:
    """The app on the private server, and a GET of it that needs the database."""

    def __init__(self, client: AsyncClient, path: str, server: PrivateServer) -> None:
        self.client = client
        self.path = path
        self.server = server

    async def ask(self) -> int:
        response = await self.client.get(self.path)
        if response.status_code == 503:
            assert response.json() == {"detail": "Database unavailable"}
        return response.status_code

    async def crash(self) -> None:
        await asyncio.to_thread(self.server.crash)

    async def restart(self) -> float:
        """Start PostgreSQL again; returns when it accepts connections."""
        await asyncio.to_thread(self.server.start)
        return time.monotonic()


@pytest.fixture
async def service(
    make_app: AppFactory, make_client: ClientFactory, private_server: PrivateServer
) -> Service:
    app = await make_app(database_url=private_server.url)

    client = await make_client(app, raise_app_exceptions=False)
    # The server lives as long as the module: every test registers a new user.
    email = f"ada.{secrets.token_hex(4)}@example.com"
    await register(client, email)
    await login(client, email)
    path = "/auth/me"
    return Service(client, path, private_server)


async def test_a_crash_between_requests_is_503_and_the_service_recovers(
    service: Service,
) -> None:
    # Concurrent requests fill the pool; its connections then sit idle.
    assert set(await asyncio.gather(*(service.ask() for _ in range(8)))) == {200}
    await service.crash()
    await asyncio.sleep(0.5)
    assert await service.ask() == 503
    assert await service.ask() == 503

    restarted = await service.restart()
    while (status := await service.ask()) != 200:
        assert status == 503
        assert time.monotonic() - restarted < RECOVERY_LIMIT, "no success since the restart"
        await asyncio.sleep(0.05)
    print(f"PostgreSQL crash while idle: recovered {time.monotonic() - restarted:.2f} s after")
    assert set(await asyncio.gather(*(service.ask() for _ in range(20)))) == {200}


async def test_a_crash_under_load_is_503_and_the_service_recovers(service: Service) -> None:
    # (sent, answered, status) of every request of a steady stream.
    answers: list[tuple[float, float, int]] = []
    streaming = True

    async def keep_asking() -> None:
        while streaming:
            sent = time.monotonic()
            status = await service.ask()
            answers.append((sent, time.monotonic(), status))
            await asyncio.sleep(0.01)

    askers = [asyncio.create_task(keep_asking()) for _ in range(4)]
    try:
        await asyncio.sleep(0.5)
        crashed = time.monotonic()
        await service.crash()
        await asyncio.sleep(1)
        restarted = await service.restart()
        while not any(sent > restarted and status == 200 for sent, _, status in answers):
            assert time.monotonic() - restarted < RECOVERY_LIMIT, "no success since the restart"
            await asyncio.sleep(0.05)
        recovered = min(done for sent, done, code in answers if sent > restarted and code == 200)
        await asyncio.sleep(1)
    finally:
        streaming = False
        await asyncio.gather(*askers)

    statuses = [status for _, _, status in answers]
    during = [status for sent, _, status in answers if crashed <= sent < recovered]
    after = [status for sent, _, status in answers if sent > recovered]
    print(
        f"PostgreSQL crash under load: {len(answers)} requests, {statuses.count(503)} answered"
        f" 503, recovered {recovered - restarted:.2f} s after the restart,"
        f" 5xx after recovery: {sum(status >= 500 for status in after)} of {len(after)}"
    )
    assert set(statuses) <= {200, 503}, "only 503 while PostgreSQL is down, never a 500"
    assert 503 in during
    assert after
    assert set(after) == {200}
    assert (await service.client.get("/health")).json()["database"] == "ok"
