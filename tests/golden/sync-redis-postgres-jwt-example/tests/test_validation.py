"""Bad input gets 422, never a 500, and the answer echoes no submitted value."""

import json

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


async def test_an_unencodable_refresh_token_is_422(client: AsyncClient) -> None:
    raw = json.dumps({"refresh_token": "x.\ud800"})
    response = await client.post(
        "/auth/refresh", content=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text


@pytest.mark.parametrize(
    "form",
    [
        {"username": "ada\x00@example.com", "password": "correct horse"},
        {"username": "ada@example.com\x00", "password": "correct horse"},
        {"username": "not an email", "password": "correct horse"},
        {"username": "a" * 1025 + "@example.com", "password": "correct horse"},
        {"username": "ada@example.com", "password": "correct \x00 horse"},
        {"username": "ada@example.com", "password": "x" * 1025},
    ],
)
async def test_the_token_form_is_validated_like_the_json_login(
    client: AsyncClient, form: dict[str, str]
) -> None:
    response = await client.post("/auth/token", data=form)
    assert response.status_code == 422, response.text
    assert all("input" not in error for error in response.json()["detail"])
