"""Password hashing as a bounded resource: per-client limits on registrations
and on every login, limits that let the owner in while a guesser is locked
out, a cap on concurrent hashes, and limit keys that reveal nobody."""

import asyncio
import contextlib
import hashlib
import logging
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest
from anyio import to_thread
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient, Response

from svc_sync_redis_postgres_jwt_ex.auth import passwords

from .conftest import AppFactory, ClientFactory, register

pytestmark = pytest.mark.anyio
PASSWORD = "correct horse"


@contextlib.asynccontextmanager
async def client_at(app: FastAPI, address: str) -> AsyncIterator[AsyncClient]:
    """A client calling from another address."""
    transport = ASGITransport(app, client=(address, 50000))
    async with AsyncClient(transport=transport, base_url="https://testserver") as client:
        yield client


async def attempt(client: AsyncClient, email: str, password: str) -> Response:
    return await client.post("/auth/token", data={"username": email, "password": password})


async def try_register(client: AsyncClient, email: str) -> Response:
    return await client.post("/auth/register", json={"email": email, "password": PASSWORD})


def limited(response: Response, window: int) -> bool:
    return response.status_code == 429 and 1 <= int(response.headers["retry-after"]) <= window


async def test_registrations_are_limited_per_client_address(
    make_app: AppFactory, make_client: ClientFactory
) -> None:
    app = await make_app(registrations_per_client=2)
    client = await make_client(app)
    for name in ("ada", "bob"):
        assert (await try_register(client, f"{name}@example.com")).status_code == 201
    assert limited(await try_register(client, "eve@example.com"), 3600)
    async with client_at(app, "192.0.2.7") as elsewhere:
        assert (await try_register(elsewhere, "eve@example.com")).status_code == 201


async def test_successful_logins_count_against_the_client_limit(
    make_app: AppFactory, make_client: ClientFactory
) -> None:
    """Every login costs a password hash, right or wrong: each one counts."""
    app = await make_app(login_attempts_per_client=2)
    client = await make_client(app)
    await register(client, "ada@example.com")
    for _ in range(2):
        assert (await attempt(client, "ada@example.com", PASSWORD)).status_code == 200
    assert limited(await attempt(client, "ada@example.com", PASSWORD), 900)
    async with client_at(app, "192.0.2.7") as elsewhere:
        assert (await attempt(elsewhere, "ada@example.com", PASSWORD)).status_code == 200


async def test_a_guesser_does_not_lock_the_owner_out(
    make_app: AppFactory, make_client: ClientFactory
) -> None:
    """The guesser's address runs out of failures on the account; the owner,
    from another address, still logs in."""
    app = await make_app(login_attempts_per_account=3)
    owner = await make_client(app)
    await register(owner, "ada@example.com")
    async with client_at(app, "198.51.100.9") as guesser:
        for _ in range(3):
            assert (await attempt(guesser, "ada@example.com", "wrong password")).status_code == 401
        assert limited(await attempt(guesser, "ada@example.com", PASSWORD), 900)
        assert (await attempt(owner, "ada@example.com", PASSWORD)).status_code == 200
        assert limited(await attempt(guesser, "ada@example.com", PASSWORD), 900)


async def test_failures_from_many_addresses_meet_the_account_wide_limit(
    make_app: AppFactory, make_client: ClientFactory
) -> None:
    app = await make_app(login_attempts_per_account=2, login_attempts_per_account_all_clients=4)
    owner = await make_client(app)
    await register(owner, "ada@example.com")
    for address in ("198.51.100.1", "198.51.100.2"):
        async with client_at(app, address) as guesser:
            for _ in range(2):
                response = await attempt(guesser, "ada@example.com", "wrong password")
                assert response.status_code == 401
    assert limited(await attempt(owner, "ada@example.com", PASSWORD), 900)


class BlockingHasher:
    """The tests' hasher, except that its first call of `method` (hash or
    verify) waits until released."""

    def __init__(self, hasher: Any, method: str) -> None:
        self.hasher = hasher
        self.method = method
        self.entered = threading.Event()
        self.release = threading.Event()

    def _first(self, method: str) -> None:
        if method == self.method and not self.entered.is_set():
            self.entered.set()
            self.release.wait(10)

    def hash(self, password: str) -> str:
        self._first("hash")
        hashed: str = self.hasher.hash(password)
        return hashed

    def verify(self, password: str, password_hash: str) -> bool:
        self._first("verify")
        valid: bool = self.hasher.verify(password, password_hash)
        return valid


async def test_hashes_beyond_the_cap_get_503_with_retry_after(
    make_app: AppFactory, make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = await make_app(password_hash_concurrency=1, password_hash_wait=0.05)
    client = await make_client(app)
    hasher = BlockingHasher(passwords._hasher, "hash")
    monkeypatch.setattr(passwords, "_hasher", hasher)
    first = asyncio.create_task(try_register(client, "ada@example.com"))
    try:
        assert await to_thread.run_sync(hasher.entered.wait, 10), "the first hash began"
        busy = await try_register(client, "bob@example.com")
        assert busy.status_code == 503, busy.text
        assert int(busy.headers["retry-after"]) >= 1
    finally:
        hasher.release.set()
        assert (await first).status_code == 201
    assert (await try_register(client, "bob@example.com")).status_code == 201


async def test_a_login_refused_for_want_of_a_hashing_turn_is_no_failure(
    make_app: AppFactory, make_client: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """503s under load must not use up the owner's failures on the account."""
    app = await make_app(
        password_hash_concurrency=1, password_hash_wait=0.05, login_attempts_per_account=1
    )
    client = await make_client(app)
    await register(client, "ada@example.com")
    hasher = BlockingHasher(passwords._hasher, "hash")
    monkeypatch.setattr(passwords, "_hasher", hasher)
    busy = asyncio.create_task(try_register(client, "bob@example.com"))
    try:
        assert await to_thread.run_sync(hasher.entered.wait, 10), "the hash began"
        for _ in range(2):
            refused = await attempt(client, "ada@example.com", PASSWORD)
            assert refused.status_code == 503, refused.text
    finally:
        hasher.release.set()
        assert (await busy).status_code == 201
    assert (await attempt(client, "ada@example.com", PASSWORD)).status_code == 200


async def test_limit_log_lines_reveal_no_email_or_address(
    make_app: AppFactory, make_client: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Keys are keyed hashes (HMAC under SECRET_KEY): hashing candidate
    emails or addresses does not find them."""
    app = await make_app(login_attempts_per_account=2, login_attempts_per_client=2)
    client = await make_client(app)
    await register(client, "ada@example.com")
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            assert (await attempt(client, "ada@example.com", "wrong password")).status_code == 401
    lines = [record.getMessage() for record in caplog.records if "limit" in record.getMessage()]
    assert lines, "reaching a limit is logged"
    # The test client's address (httpx's ASGITransport default).
    for plain in ("ada@example.com", "127.0.0.1"):
        digest = hashlib.sha256(plain.encode()).hexdigest()
        for line in lines:
            assert plain not in line
            assert digest[:16] not in line, f"{line} holds the SHA-256 of {plain}"
