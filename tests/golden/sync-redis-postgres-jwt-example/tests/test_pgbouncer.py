"""The service behind PgBouncer in transaction pooling mode, with
`DATABASE_PGBOUNCER=true`: a private pgbouncer in front of the test run's
database hands every transaction to any of its few server connections."""

import asyncio
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy.engine import URL

from .conftest import AppFactory, ClientFactory, login, register

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

# Fewer server connections than the app's pool, so transactions change hands.
SERVER_CONNECTIONS = 2


def pgbouncer_program() -> str | None:
    # Debian installs it in /usr/sbin, which is not on every PATH.
    return shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def pgbouncer_config(server: URL, port: int) -> str:
    """Transaction pooling on 127.0.0.1:`port` for `server`'s database; clients
    need no password, pgbouncer logs in to the server as `server`'s user."""
    login = f"user={server.username or 'postgres'}"
    if server.password:
        password = str(server.password).replace("\\", "\\\\").replace("'", "\\'")
        login += f" password='{password}'"
    lines = [
        "[databases]",
        f"{server.database} = host={server.host or '127.0.0.1'} port={server.port or 5432} {login}",
        "[pgbouncer]",
        "listen_addr = 127.0.0.1",
        f"listen_port = {port}",
        "unix_socket_dir =",
        "auth_type = any",
        "pool_mode = transaction",
        f"default_pool_size = {SERVER_CONNECTIONS}",
        "max_client_conn = 200",
    ]
    if os.geteuid() == 0:
        # pgbouncer refuses to run as root; started as root, it switches to this user.
        try:
            lines.append(f"user = {pwd.getpwnam('postgres').pw_name}")
        except KeyError:
            pytest.skip("run as root, this test needs a `postgres` OS user to run pgbouncer as")
    return "\n".join(lines) + "\n"


def wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while process.poll() is None and time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("pgbouncer did not start")


@pytest.fixture(scope="module")
def pgbouncer_url(migrated_database: URL) -> Iterator[str]:
    """The URL of the run's database through a private pgbouncer."""
    program = pgbouncer_program()
    if program is None:
        pytest.skip("needs pgbouncer")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="pgbouncer-") as name:
        config = Path(name) / "pgbouncer.ini"
        config.write_text(pgbouncer_config(migrated_database, port))
        log = Path(name) / "pgbouncer.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [program, str(config)], stdout=output, stderr=subprocess.STDOUT
            )
        try:
            try:
                wait_for_port(port, process)
            except RuntimeError as error:
                raise RuntimeError(f"{error}: {log.read_text()}") from None
            url = migrated_database.set(host="127.0.0.1", port=port)
            yield url.render_as_string(hide_password=False)
        finally:
            process.terminate()
            process.wait(timeout=10)


@pytest.fixture
async def pooled_app(make_app: AppFactory, pgbouncer_url: str) -> FastAPI:
    app = await make_app(database_url=pgbouncer_url, database_pgbouncer=True)

    return app


async def customer(make_client: ClientFactory, app: FastAPI, number: int) -> AsyncClient:
    """A client of a new user, logged in."""
    client = await make_client(app)
    await register(client, f"user{number}@example.com")
    await login(client, f"user{number}@example.com")
    return client


async def add_product(client: AsyncClient, stock: int) -> int:
    body = {"name": "Teapot", "price_cents": 250, "stock": stock}
    response = await client.post("/products", json=body)
    assert response.status_code == 201, response.text
    product_id: int = response.json()["id"]
    return product_id


async def test_orders_through_pgbouncer(make_client: ClientFactory, pooled_app: FastAPI) -> None:
    shopper = await customer(make_client, pooled_app, 0)
    product_id = await add_product(shopper, stock=3)
    item = {"product_id": product_id, "quantity": 2}
    assert (await shopper.post("/cart/items", json=item)).status_code == 200
    order = await shopper.post("/orders")
    assert order.status_code == 201, order.text
    assert (await shopper.get(f"/orders/{order.json()['id']}")).status_code == 200
    assert (await shopper.get(f"/products/{product_id}")).json()["stock"] == 1

    # Concurrent orders for the last unit: exactly one succeeds.
    buyers = [await customer(make_client, pooled_app, number) for number in range(1, 5)]
    for buyer in buyers:
        item = {"product_id": product_id, "quantity": 1}
        assert (await buyer.post("/cart/items", json=item)).status_code == 200
    responses = await asyncio.gather(*(buyer.post("/orders") for buyer in buyers))
    assert sorted(response.status_code for response in responses) == [201, 409, 409, 409]
    assert (await shopper.get(f"/products/{product_id}")).json()["stock"] == 0


async def test_concurrent_requests_through_pgbouncer(
    make_client: ClientFactory, pooled_app: FastAPI
) -> None:
    """Every statement runs many times, on several of the app's connections,
    each transaction on whichever server connection pgbouncer hands it:
    prepared statements would be missing or taken there."""
    clients = [await customer(make_client, pooled_app, number) for number in range(4)]
    path = "/auth/me"
    for _ in range(5):
        responses = await asyncio.gather(*(client.get(path) for client in clients * 5))
        assert [response.status_code for response in responses] == [200] * len(responses)
