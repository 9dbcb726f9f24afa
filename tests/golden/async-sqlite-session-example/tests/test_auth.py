"""Cookie login: login, logout, session management, CSRF."""

import pytest
from httpx import AsyncClient

from .conftest import ClientFactory, SessionProbe, login, register

pytestmark = pytest.mark.anyio
COOKIE = "__Host-session"
PASSWORD = "correct horse"


async def test_login_returns_the_user_and_a_csrf_token(client: AsyncClient) -> None:
    user_id = await register(client, "ada@example.com")
    response = await client.post(
        "/auth/login", json={"email": "ada@example.com", "password": PASSWORD}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == user_id
    assert body["email"] == "ada@example.com"
    assert len(body["csrf_token"]) >= 32
    assert COOKIE in client.cookies


async def test_wrong_password_and_unknown_email_look_the_same(client: AsyncClient) -> None:
    await register(client, "ada@example.com")
    wrong = await client.post("/auth/login", json={"email": "ada@example.com", "password": "x" * 9})
    unknown = await client.post(
        "/auth/login", json={"email": "bob@example.com", "password": PASSWORD}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert COOKIE not in client.cookies


async def test_me_needs_a_live_session(client: AsyncClient) -> None:
    assert (await client.get("/auth/me")).status_code == 401
    user_id = await register(client, "ada@example.com")
    await login(client, "ada@example.com")
    response = await client.get("/auth/me")
    assert response.status_code == 200
    assert response.json() == {
        "id": user_id,
        "email": "ada@example.com",
        "email_verified": False,
        "mfa": False,
    }


async def test_login_issues_a_fresh_id_and_kills_the_old_one(
    client: AsyncClient, make_client: ClientFactory
) -> None:
    """Session fixation: an id known before login is worthless after it."""
    await register(client, "ada@example.com")
    await login(client, "ada@example.com")
    before = client.cookies[COOKIE]
    await login(client, "ada@example.com")
    after = client.cookies[COOKIE]
    assert after != before
    attacker = await make_client()
    attacker.cookies.set(COOKIE, before)
    assert (await attacker.get("/auth/me")).status_code == 401
    assert (await client.get("/auth/me")).status_code == 200


async def test_logout_deletes_the_session_server_side(
    client: AsyncClient, make_client: ClientFactory, probe: SessionProbe
) -> None:
    await register(client, "ada@example.com")
    await login(client, "ada@example.com")
    stolen = client.cookies[COOKIE]
    response = await client.post("/auth/logout")
    assert response.status_code == 204
    assert f"{COOKIE}=;" in response.headers["set-cookie"]
    assert await probe.states() == []
    replay = await make_client()
    replay.cookies.set(COOKIE, stolen)
    assert (await replay.get("/auth/me")).status_code == 401


async def test_unsafe_requests_need_the_csrf_token(client: AsyncClient) -> None:
    await register(client, "ada@example.com")
    token = await login(client, "ada@example.com")
    del client.headers["X-CSRF-Token"]
    assert (await client.post("/auth/logout")).status_code == 403
    wrong = await client.post("/auth/logout", headers={"X-CSRF-Token": "x" * len(token)})
    assert wrong.status_code == 403
    assert (await client.get("/auth/me")).status_code == 200
    assert (await client.post("/auth/logout", headers={"X-CSRF-Token": token})).status_code == 204


async def test_sessions_are_listed_by_public_handle(
    client: AsyncClient, make_client: ClientFactory
) -> None:
    await register(client, "ada@example.com")
    await login(client, "ada@example.com")
    other = await make_client()
    await login(other, "ada@example.com")
    response = await client.get("/auth/sessions")
    assert response.status_code == 200
    listed = response.json()
    assert len(listed) == 2
    assert [entry["current"] for entry in listed].count(True) == 1
    secrets = {client.cookies[COOKIE], other.cookies[COOKIE]}
    for entry in listed:
        assert set(entry) == {"id", "created_at", "last_seen", "current"}
        assert not any(entry["id"] in secret for secret in secrets)


async def test_logout_everywhere_ends_every_session_of_the_user(
    client: AsyncClient, make_client: ClientFactory
) -> None:
    await register(client, "ada@example.com")
    await login(client, "ada@example.com")
    other = await make_client()
    await login(other, "ada@example.com")
    bystander = await make_client()
    await register(bystander, "bob@example.com")
    await login(bystander, "bob@example.com")
    assert (await client.delete("/auth/sessions")).status_code == 204
    assert (await client.get("/auth/me")).status_code == 401
    assert (await other.get("/auth/me")).status_code == 401
    assert (await bystander.get("/auth/me")).status_code == 200
