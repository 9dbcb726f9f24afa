"""Changes of credentials win races (`auth.accounts.revoke_credentials`): a
session made before a password change or "log out everywhere" is refused
after it, even when it is saved just after it by a login that checked the
old password while the change ran."""

import threading
from collections.abc import Iterator

import anyio
import pytest
from anyio import to_thread
from httpx import AsyncClient

from svc_async_mongo_session_ex.auth import routes
from svc_async_mongo_session_ex.auth.passwords import verify_password

from .conftest import ClientFactory, SessionProbe, login, register

pytestmark = pytest.mark.anyio
PASSWORD = "correct horse"
CHANGE = {"current_password": PASSWORD, "new_password": "a brand new horse"}
COOKIE = "__Host-session"


class HeldCheck:
    """Once armed, holds the next password check of the routes after it ran
    (a login has read the user and checked the password) until released."""

    def __init__(self) -> None:
        self.armed = False
        self.checked = threading.Event()
        self.released = threading.Event()

    async def wait_checked(self) -> None:
        assert await to_thread.run_sync(self.checked.wait, 10), "the login never checked"


@pytest.fixture
def held_check(monkeypatch: pytest.MonkeyPatch) -> Iterator[HeldCheck]:
    held = HeldCheck()

    async def verify_and_hold(password: str, password_hash: str | None) -> bool:
        valid = await verify_password(password, password_hash)
        if held.armed:
            held.armed = False
            held.checked.set()
            await to_thread.run_sync(held.released.wait, 10)
        return valid

    monkeypatch.setattr(routes, "verify_password", verify_and_hold)
    yield held
    held.released.set()


async def user_states(probe: SessionProbe, user_id: int) -> list[object]:
    return [state for state in await probe.states() if state.user_id == user_id]


async def race_a_login(
    racer: AsyncClient, held: HeldCheck, client: AsyncClient, method: str, path: str, status: int
) -> None:
    """Log `racer` in with the old password while `client` sends `method path`:
    the login checks the password before that request runs, and saves its
    session after that request has answered `status`."""

    async with anyio.create_task_group() as group:
        held.armed = True
        group.start_soon(login, racer, "ada@example.com")
        await held.wait_checked()
        body = CHANGE if method == "POST" else None
        response = await client.request(method, path, json=body)
        assert response.status_code == status, response.text
        held.released.set()


async def test_a_login_that_raced_a_password_change_is_refused_and_ended(
    client: AsyncClient, make_client: ClientFactory, probe: SessionProbe, held_check: HeldCheck
) -> None:
    user_id = await register(client, "ada@example.com")
    await login(client, "ada@example.com")
    racer = await make_client()
    await race_a_login(racer, held_check, client, "POST", "/auth/password", 204)
    assert len(await user_states(probe, user_id)) == 2, "the racing login saved its session"
    refused = await racer.get("/auth/me")
    assert refused.status_code == 401
    assert f"{COOKIE}=;" in refused.headers["set-cookie"], "the client forgets it"
    assert len(await user_states(probe, user_id)) == 1, "the stale session is deleted"
    assert (await client.get("/auth/me")).status_code == 200, "the changer goes on"
    listed = (await client.get("/auth/sessions")).json()
    assert [entry["current"] for entry in listed] == [True]


async def test_a_session_saved_with_an_older_epoch_is_refused(
    client: AsyncClient, make_client: ClientFactory, held_check: HeldCheck
) -> None:
    """The check is the epoch, not the deletion: an access with the raced
    session is refused at once, whatever route it calls first."""
    await register(client, "ada@example.com")
    await login(client, "ada@example.com")
    racer = await make_client()
    await race_a_login(racer, held_check, client, "POST", "/auth/password", 204)
    assert (await racer.get("/auth/me")).status_code == 401
    # And a login with the new password works as before.
    await login(racer, "ada@example.com", CHANGE["new_password"])
    assert (await racer.get("/auth/me")).status_code == 200


async def test_logout_everywhere_ends_a_login_saved_concurrently(
    client: AsyncClient, make_client: ClientFactory, probe: SessionProbe, held_check: HeldCheck
) -> None:
    user_id = await register(client, "ada@example.com")
    await login(client, "ada@example.com")
    racer = await make_client()
    await race_a_login(racer, held_check, client, "DELETE", "/auth/sessions", 204)
    assert (await racer.get("/auth/me")).status_code == 401
    assert (await client.get("/auth/me")).status_code == 401
    assert await user_states(probe, user_id) == []
    # The password still works: "log out everywhere" only ends sessions.
    await login(racer, "ada@example.com")
