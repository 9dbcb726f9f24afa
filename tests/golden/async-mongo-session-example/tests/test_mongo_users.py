"""Users stored by earlier releases (only the normalised email, unique):
start-up gives them their canonical form and moves the unique index to it;
their missing second-factor fields read as "none"."""

from typing import Any

import pyotp
import pytest
from pymongo import ASCENDING, MongoClient

from svc_async_mongo_session_ex.auth.passwords import hash_password

from .conftest import AppFactory, ClientFactory, login

pytestmark = pytest.mark.anyio
PASSWORD = "correct horse"


async def test_start_up_gives_earlier_users_their_canonical_email(
    database_url: str, make_app: AppFactory, make_client: ClientFactory
) -> None:
    mongo: MongoClient[dict[str, Any]] = MongoClient(database_url)
    database = mongo.get_default_database()
    database.users.create_index([("email", ASCENDING)], unique=True)
    database.users.insert_one(
        {
            "_id": 1,
            "email": "strasse@example.com",
            "password_hash": await hash_password(PASSWORD),
            "is_active": True,
        }
    )
    database.counters.insert_one({"_id": "users", "value": 1})
    client = await make_client(await make_app())
    await login(client, "Straße@Example.com")
    assert (await client.get("/auth/me")).json()["email"] == "strasse@example.com"
    taken = await client.post(
        "/auth/register", json={"email": "STRASSE@example.com", "password": PASSWORD}
    )
    assert taken.status_code == 409
    stored = database.users.find_one({"_id": 1}, {"_id": 0, "email": 1, "email_canonical": 1})
    assert stored == {"email": "strasse@example.com", "email_canonical": "strasse@example.com"}
    assert "email_1" not in database.users.index_information()
    mongo.close()


async def test_earlier_users_have_no_second_factor_and_can_set_one_up(
    database_url: str, make_app: AppFactory, make_client: ClientFactory
) -> None:
    """A user stored before the second factor (none of its fields) logs in
    without a code, and can set one up."""
    mongo: MongoClient[dict[str, Any]] = MongoClient(database_url)
    database = mongo.get_default_database()
    database.users.insert_one(
        {
            "_id": 1,
            "email": "ada@example.com",
            "email_canonical": "ada@example.com",
            "password_hash": await hash_password(PASSWORD),
            "is_active": True,
        }
    )
    database.counters.insert_one({"_id": "users", "value": 1})
    client = await make_client(await make_app())
    await login(client, "ada@example.com")
    assert (await client.get("/auth/me")).json()["mfa"] is False
    setup = await client.post("/auth/mfa/totp", json={"current_password": PASSWORD})
    code = pyotp.TOTP(setup.json()["secret"]).now()
    confirmed = await client.post("/auth/mfa/totp/confirm", json={"code": code})
    assert len(confirmed.json()["recovery_codes"]) == 10
    mongo.close()
