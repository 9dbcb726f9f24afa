"""Bad input gets 422, never a 500, and the answer echoes no submitted value."""

import pytest
from httpx import AsyncClient

pytestmark = pytest.mark.anyio


async def test_a_422_does_not_echo_the_password(client: AsyncClient) -> None:
    secret = "hunter2"
    response = await client.post(
        "/auth/register", json={"email": "ada@example.com", "password": secret}
    )
    assert response.status_code == 422
    assert secret not in response.text
    assert [error["loc"] for error in response.json()["detail"]] == [["body", "password"]]


@pytest.mark.parametrize(
    "raw",
    [
        '{"email": "ada@example.com", "password": "correct \\ud800 horse"}',
        '{"email": "ada@example.com", "password": "correct \\u0000 horse"}',
        '{"email": NaN, "password": "correct horse"}',
        '{"email": "ada@example.com", "password": Infinity}',
        '{"email": "ada@example.com", "password": 1e309}',
    ],
)
async def test_unencodable_input_is_422(client: AsyncClient, raw: str) -> None:
    response = await client.post(
        "/auth/register", content=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert all("input" not in error for error in response.json()["detail"])
