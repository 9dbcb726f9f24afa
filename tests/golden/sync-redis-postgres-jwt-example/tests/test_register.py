"""Registration (the same for every auth style)."""

import pytest
from httpx import AsyncClient

from .conftest import login, register

pytestmark = pytest.mark.anyio
PASSWORD = "correct horse"


async def test_register_returns_the_user(client: AsyncClient) -> None:
    response = await client.post(
        "/auth/register", json={"email": "Ada@Example.com", "password": PASSWORD}
    )
    assert response.status_code == 201
    assert response.json() == {"id": response.json()["id"], "email": "Ada@example.com"}


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        # `strasse@` would be another mailbox.
        (" Straße@Example.COM ", "Straße@example.com"),
        # "\ufb01" is the ligature fi.
        ("\ufb01nance@example.com", "\ufb01nance@example.com"),
        # The domain in its IDNA Unicode form, however given.
        ("Ada@XN--BCHER-KVA.example", "Ada@bücher.example"),
    ],
)
async def test_an_email_is_kept_as_given(client: AsyncClient, given: str, kept: str) -> None:
    """Trimmed and its domain normalised, else as the user typed it: returned
    so by register, login and /auth/me."""
    response = await client.post("/auth/register", json={"email": given, "password": PASSWORD})
    assert response.status_code == 201
    assert response.json()["email"] == kept
    await login(client, given)
    assert (await client.get("/auth/me")).json()["email"] == kept


async def test_an_email_is_compared_in_its_canonical_form(client: AsyncClient) -> None:
    """Case folded (`ß` is `ss`) and compatibility forms plain: the variants
    of an address are its account, taken for a new one, and log in to it."""
    user_id = await register(client, "Straße@example.com")
    # "\uff53" is a fullwidth s.
    variants = ["strasse@example.com", "STRASSE@EXAMPLE.COM", "\uff53traße@example.com"]
    for variant in variants:
        response = await client.post(
            "/auth/register", json={"email": variant, "password": PASSWORD}
        )
        assert response.status_code == 409, variant
    for variant in variants:
        await login(client, variant)
        me = (await client.get("/auth/me")).json()
        assert (me["id"], me["email"]) == (user_id, "Straße@example.com")


@pytest.mark.parametrize(
    "email",
    [
        # "\u0430" is a Cyrillic a, "\u03bf" a Greek o.
        "p\u0430ypal@example.com",
        "j\u03bfhn@example.com",
    ],
)
async def test_register_refuses_a_look_alike_address(client: AsyncClient, email: str) -> None:
    """A local part that mixes scripts is refused: it passes for another."""
    response = await client.post("/auth/register", json={"email": email, "password": PASSWORD})
    assert response.status_code == 422
    assert "mixes scripts" in response.text


async def test_register_refuses_an_address_whose_canonical_form_is_too_long(
    client: AsyncClient,
) -> None:
    """NFKC can lengthen an address: "\ufdfa", one character, is 18 letters
    in its plain form: 20 of them are over the 320 characters an address may
    have (422, never a 500)."""
    email = "\ufdfa" * 20 + "@example.com"
    response = await client.post("/auth/register", json={"email": email, "password": PASSWORD})
    assert response.status_code == 422
    assert "too long" in response.text


@pytest.mark.parametrize(
    "email",
    # "\u0410\u0434\u0430" is Ada in Cyrillic letters.
    ["\u0410\u0434\u0430@example.com", "山田たろう@example.jp", "Ada.99+shop@example.com"],
)
async def test_register_takes_one_script_and_the_mixes_of_a_language(
    client: AsyncClient, email: str
) -> None:
    """Any one script (with digits and punctuation), and the scripts that
    one language writes together (Japanese: Han and kana), are kept as given."""
    response = await client.post("/auth/register", json={"email": email, "password": PASSWORD})
    assert response.status_code == 201
    assert response.json()["email"] == email


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
