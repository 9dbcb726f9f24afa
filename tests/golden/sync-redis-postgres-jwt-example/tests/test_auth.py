"""Bearer tokens: issue, refresh with rotation and reuse detection, revocation."""

import asyncio
import hashlib
import secrets
import time
from typing import Any

import jwt
import pytest
from httpx import AsyncClient, Response
from sqlalchemy import delete, update

from svc_sync_redis_postgres_jwt_ex.auth.tokens import key_id
from svc_sync_redis_postgres_jwt_ex.models import User

from .conftest import (
    TEST_KEY,
    AppFactory,
    ClientFactory,
    Database,
    SessionProbe,
    login,
    register,
)

pytestmark = pytest.mark.anyio
PASSWORD = "correct horse"


def forge(claims: dict[str, Any], key: str = TEST_KEY, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": key_id(key)})


def claims_of(access_token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(access_token, options={"verify_signature": False})
    return claims


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def signed_in(client: AsyncClient, email: str = "ada@example.com") -> dict[str, Any]:
    await register(client, email)
    return await login(client, email)


async def refresh(client: AsyncClient, refresh_token: str) -> Response:
    return await client.post("/auth/refresh", json={"refresh_token": refresh_token})


async def test_token_returns_a_bearer_pair(client: AsyncClient) -> None:
    user_id = await register(client, "ada@example.com")
    response = await client.post(
        "/auth/token", data={"username": "ada@example.com", "password": PASSWORD}
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900
    claims = claims_of(body["access_token"])
    assert claims["sub"] == str(user_id)
    assert {"sid", "iat", "exp", "jti"} <= set(claims)
    assert claims["exp"] - claims["iat"] == 900
    assert jwt.get_unverified_header(body["access_token"])["kid"] == key_id(TEST_KEY)


async def test_wrong_password_and_unknown_email_look_the_same(client: AsyncClient) -> None:
    await register(client, "ada@example.com")
    wrong = await client.post(
        "/auth/token", data={"username": "ada@example.com", "password": "x" * 9}
    )
    unknown = await client.post(
        "/auth/token", data={"username": "bob@example.com", "password": PASSWORD}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()


async def test_me_needs_a_valid_bearer_token(client: AsyncClient) -> None:
    assert (await client.get("/auth/me")).status_code == 401
    tokens = await signed_in(client)
    response = await client.get("/auth/me")
    assert response.status_code == 200
    assert response.json()["email"] == "ada@example.com"
    garbage = await client.get("/auth/me", headers=bearer("not.a.token"))
    assert garbage.status_code == 401
    assert garbage.headers["www-authenticate"] == "Bearer"
    refresh_as_access = await client.get("/auth/me", headers=bearer(tokens["refresh_token"]))
    assert refresh_as_access.status_code == 401


async def test_expired_and_not_yet_valid_tokens_are_refused(client: AsyncClient) -> None:
    tokens = await signed_in(client)
    claims = claims_of(tokens["access_token"])
    now = int(time.time())
    expired = forge(claims | {"iat": now - 120, "nbf": now - 120, "exp": now - 60})
    assert (await client.get("/auth/me", headers=bearer(expired))).status_code == 401
    early = forge(claims | {"nbf": now + 60})
    assert (await client.get("/auth/me", headers=bearer(early))).status_code == 401
    assert (await client.get("/auth/me", headers=bearer(forge(claims)))).status_code == 200


@pytest.mark.slow
async def test_short_lifetime_expires_access_tokens(
    make_app: AppFactory, make_client: ClientFactory
) -> None:
    # JWT times are whole seconds: a 2 s lifetime leaves at least 1 s of validity.
    app = await make_app(access_token_lifetime=2)
    client = await make_client(app)
    await signed_in(client)
    assert (await client.get("/auth/me")).status_code == 200
    await asyncio.sleep(2.1)
    assert (await client.get("/auth/me")).status_code == 401


async def test_alg_none_and_other_algorithms_are_refused(client: AsyncClient) -> None:
    tokens = await signed_in(client)
    claims = claims_of(tokens["access_token"])
    # "" is no key, for PyJWT (whose types, with `cryptography` installed, refuse None).
    unsigned = jwt.encode(claims, "", algorithm="none", headers={"kid": key_id(TEST_KEY)})
    assert (await client.get("/auth/me", headers=bearer(unsigned))).status_code == 401
    hs512 = forge(claims, algorithm="HS512")
    assert (await client.get("/auth/me", headers=bearer(hs512))).status_code == 401


async def test_a_token_signed_with_an_unknown_key_is_refused(client: AsyncClient) -> None:
    tokens = await signed_in(client)
    retired = forge(claims_of(tokens["access_token"]), key="a retired key, no longer configured")
    assert (await client.get("/auth/me", headers=bearer(retired))).status_code == 401


async def test_rotating_the_secret_key_logs_nobody_out(
    make_app: AppFactory, make_client: ClientFactory, client: AsyncClient
) -> None:
    tokens = await signed_in(client)
    new_key = "the-new-secret-key-0123456789abcdefghijklmnopqrstuv"
    rotated = await make_client(await make_app(secret_key=[new_key, TEST_KEY]))
    old_token = bearer(tokens["access_token"])
    assert (await rotated.get("/auth/me", headers=old_token)).status_code == 200
    refreshed = await rotated.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200
    new_token = refreshed.json()["access_token"]
    assert jwt.get_unverified_header(new_token)["kid"] == key_id(new_key)
    assert (await rotated.get("/auth/me", headers=bearer(new_token))).status_code == 200


async def test_refresh_rotates_and_reuse_revokes_the_session(client: AsyncClient) -> None:
    first = await signed_in(client)
    response = await client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert response.status_code == 200
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert (await client.get("/auth/me", headers=bearer(second["access_token"]))).status_code == 200
    reused = await client.post("/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert reused.status_code == 401
    # The whole login session is gone: its tokens, old and new, stop working.
    assert (await client.get("/auth/me", headers=bearer(second["access_token"]))).status_code == 401
    again = await client.post("/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert again.status_code == 401


async def test_parallel_refreshes_with_one_token_let_one_win_and_revoke_the_session(
    client: AsyncClient, make_client: ClientFactory, probe: SessionProbe
) -> None:
    tokens = await signed_in(client)
    clients = [await make_client() for _ in range(5)]
    responses = await asyncio.gather(
        *(refresh(other, tokens["refresh_token"]) for other in clients)
    )
    # One request wins the compare-and-set on the stored refresh hash. Every
    # other one presented a token that is now retired: reuse, so the login
    # session is revoked, and the winner's new tokens die with it.
    assert sorted(response.status_code for response in responses) == [200, 401, 401, 401, 401]
    [winner] = [response.json() for response in responses if response.status_code == 200]
    assert (await client.get("/auth/me", headers=bearer(winner["access_token"]))).status_code == 401
    assert (await refresh(client, winner["refresh_token"])).status_code == 401
    assert await probe.states() == []


async def test_a_refresh_secret_never_issued_gets_401_and_revokes_nothing(
    client: AsyncClient, make_client: ClientFactory
) -> None:
    tokens = await signed_in(client)
    # The handle is readable in any access token, even an expired one.
    sid = claims_of(tokens["access_token"])["sid"]
    real = tokens["refresh_token"]
    attacker = await make_client()
    tampered = real[:-4] + ("AAAA" if not real.endswith("AAAA") else "BBBB")
    for guess in (f"{sid}.x", f"{sid}.{secrets.token_urlsafe(64)}", tampered):
        assert (await refresh(attacker, guess)).status_code == 401
    assert (await client.get("/auth/me")).status_code == 200
    assert (await refresh(client, real)).status_code == 200


async def test_refresh_is_refused_for_a_disabled_or_deleted_user(
    make_client: ClientFactory, database: Database
) -> None:
    ada, bob, eve = [await make_client() for _ in range(3)]
    ada_tokens = await signed_in(ada, "ada@example.com")
    bob_tokens = await signed_in(bob, "bob@example.com")
    eve_tokens = await signed_in(eve, "eve@example.com")
    ada_id = (await ada.get("/auth/me")).json()["id"]
    bob_id = (await bob.get("/auth/me")).json()["id"]
    # Changed in the database directly, not through `disable_user`: the users'
    # login sessions are still there.
    await database.execute(update(User).where(User.id == ada_id).values(is_active=False))
    await database.execute(delete(User).where(User.id == bob_id))
    assert (await refresh(ada, ada_tokens["refresh_token"])).status_code == 401
    assert (await refresh(bob, bob_tokens["refresh_token"])).status_code == 401
    assert (await refresh(eve, eve_tokens["refresh_token"])).status_code == 200


async def test_malformed_refresh_tokens_are_refused(client: AsyncClient) -> None:
    await signed_in(client)
    for token in ("", "nodot", "unknown.handle", "x" * 300):
        response = await client.post("/auth/refresh", json={"refresh_token": token})
        assert response.status_code in (401, 422)


async def test_logout_revokes_the_session_at_once(client: AsyncClient, probe: SessionProbe) -> None:
    tokens = await signed_in(client)
    assert (await client.post("/auth/logout")).status_code == 204
    assert await probe.states() == []
    assert (await client.get("/auth/me")).status_code == 401
    refreshed = await client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 401


async def test_the_store_keeps_only_a_hash_of_the_refresh_token(
    client: AsyncClient, probe: SessionProbe
) -> None:
    tokens = await signed_in(client)
    secret = tokens["refresh_token"].partition(".")[2]
    [state] = await probe.states()
    assert state.refresh_hash == hashlib.sha256(secret.encode()).hexdigest()


@pytest.mark.slow
async def test_idle_timeout_ends_the_login_session(
    make_app: AppFactory, make_client: ClientFactory
) -> None:
    client = await make_client(await make_app(session_idle_timeout=1))
    await signed_in(client)
    await asyncio.sleep(1.2)
    assert (await client.get("/auth/me")).status_code == 401


async def test_session_reads_cost_one_lookup_and_no_rewrite(
    client: AsyncClient, probe: SessionProbe
) -> None:
    await signed_in(client)
    probe.operations.clear()
    assert (await client.get("/health")).status_code == 200
    assert probe.writes == ["PING"]
    assert probe.reads == []
    probe.operations.clear()
    assert (await client.get("/auth/me")).status_code == 200
    # Redis finds the session by its handle: one GET for the id, one for the session.
    assert len(probe.reads) == 2
    assert probe.writes == []
