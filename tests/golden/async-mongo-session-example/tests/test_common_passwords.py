"""New passwords are refused when they are among the 10,000 most common."""

import pytest
from httpx import AsyncClient

from svc_async_mongo_session_ex.auth.common_passwords import COMMON_PASSWORDS_REFUSED, RANKS

from .conftest import login, register

pytestmark = pytest.mark.anyio
PASSWORD = "correct horse"
MESSAGE = "is one of the 10,000 most common passwords: choose another"


def ranked(*, common: bool) -> str:
    """The least common password of at least 8 characters that is refused
    (`common`), or the most common one that is not."""
    ranks = [
        (rank, password)
        for password, rank in RANKS.items()
        if len(password) >= 8 and (rank <= COMMON_PASSWORDS_REFUSED) == common
    ]
    return (max(ranks) if common else min(ranks))[1]


@pytest.mark.parametrize("password", ["password", "12345678", "Password", "QWERTYUIOP"])
async def test_registration_refuses_a_common_password(client: AsyncClient, password: str) -> None:
    body = {"email": "ada@example.com", "password": password}
    response = await client.post("/auth/register", json=body)
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "password"]
    assert MESSAGE in error["msg"]
    # No account was made: the email is still free.
    await register(client, "ada@example.com")


async def test_the_10000th_most_common_password_is_refused_and_the_next_accepted(
    client: AsyncClient,
) -> None:
    refused = await client.post(
        "/auth/register", json={"email": "ada@example.com", "password": ranked(common=True)}
    )
    assert refused.status_code == 422, refused.text
    await register(client, "bob@example.com", ranked(common=False))


async def test_a_password_change_refuses_a_common_password(client: AsyncClient) -> None:
    await register(client, "ada@example.com")
    await login(client, "ada@example.com")
    change = {"current_password": PASSWORD, "new_password": "password1"}
    response = await client.post("/auth/password", json=change)
    assert response.status_code == 422, response.text
    assert [error["loc"] for error in response.json()["detail"]] == [["body", "new_password"]]
    assert MESSAGE in response.json()["detail"][0]["msg"]
    await login(client, "ada@example.com", PASSWORD)


async def test_logging_in_with_a_common_password_is_not_refused_as_invalid(
    client: AsyncClient,
) -> None:
    """An account made before the rule keeps working: only new passwords are checked."""
    response = await client.post(
        "/auth/login",
        json={"email": "ada@example.com", "password": "password"},
    )
    assert response.status_code == 401
