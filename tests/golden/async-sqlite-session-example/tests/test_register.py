"""Registration (the same for every auth style)."""

import pytest
from httpx import AsyncClient

from .conftest import register

pytestmark = pytest.mark.anyio
PASSWORD = "correct horse"


async def test_register_returns_the_user(client: AsyncClient) -> None:
    response = await client.post(
        "/auth/register", json={"email": "Ada@Example.com", "password": PASSWORD}
    )
    assert response.status_code == 201
    assert response.json() == {"id": response.json()["id"], "email": "ada@example.com"}


async def test_register_refuses_a_taken_email(client: AsyncClient) -> None:
    await register(client, "ada@example.com")
    response = await client.post(
        "/auth/register", json={"email": "ADA@example.com", "password": PASSWORD}
    )
    assert response.status_code == 409


@pytest.mark.parametrize(
    "body",
    [
        {"email": "ada@example.com", "password": "short"},
        {"email": "not an email", "password": PASSWORD},
        {"email": "ada@example.com"},
    ],
)
async def test_register_validates_input(client: AsyncClient, body: dict[str, str]) -> None:
    response = await client.post("/auth/register", json=body)
    assert response.status_code == 422
    assert "detail" in response.json()
