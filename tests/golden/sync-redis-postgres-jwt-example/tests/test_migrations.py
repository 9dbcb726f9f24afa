"""Migrations 0002 (the emails stored before it get their one normalised
form), 0003 (emails kept as given, beside their canonical form), then
`credential_epoch` (the users' credential epochs), `accounts` (verified
emails, the outbox, mailed tokens) and `second_factor` (TOTP)."""

import secrets
from collections.abc import Iterator
from typing import Any

import pyotp
import pytest
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL

from svc_sync_redis_postgres_jwt_ex.auth.passwords import hash_password
from svc_sync_redis_postgres_jwt_ex.database_url import normalize_database_url

from .conftest import ROOT, AppFactory, ClientFactory, login, run_admin

PASSWORD = "correct horse"


@pytest.fixture
def old_database(server_url: URL) -> Iterator[str]:
    """An empty database of this test's own, dropped afterwards."""
    name = f"test_svc_sync_redis_postgres_jwt_ex_{secrets.token_hex(4)}"
    run_admin(server_url, f"CREATE DATABASE {name}")
    try:
        yield server_url.set(database=name).render_as_string(hide_password=False)
    finally:
        # FORCE: a failed `alembic upgrade` leaves its pooled connection open.
        run_admin(server_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def alembic_config(url: str) -> Config:
    config = Config(ROOT / "alembic.ini")
    config.set_main_option("sqlalchemy.url", url)
    return config


def migrate_to(url: str, revision: str) -> None:
    command.upgrade(alembic_config(url), revision)


def run(url: str, *statements: str) -> list[Any]:
    """Run statements in one transaction; returns the last one's rows."""
    engine = create_engine(normalize_database_url(url))
    with engine.begin() as connection:
        for statement in statements:
            result = connection.execute(text(statement))
        rows = list(result.all()) if result.returns_rows else []
    engine.dispose()
    return rows


def revisions(name: str) -> tuple[str, str]:
    """The revision of the migration named `name`, and the one before it:
    found by name, as their numbers depend on the project's history."""
    scripts = ScriptDirectory.from_config(alembic_config("sqlite://"))
    for script in scripts.walk_revisions():
        if script.path.endswith(f"_{name}.py"):
            assert isinstance(script.down_revision, str)
            return script.revision, script.down_revision
    raise AssertionError(f"no {name} migration")


def store_a_user_before_accounts(url: str, password_hash: str) -> list[Any]:
    """A user stored before the `accounts` migration, then the rest run."""
    _, before = revisions("accounts")
    migrate_to(url, before)
    run(
        url,
        "INSERT INTO users (email, email_canonical, password_hash, is_active)"
        f" VALUES ('Ada@example.com', 'ada@example.com', '{password_hash}', TRUE)",
    )
    migrate_to(url, "head")
    return [tuple(row) for row in run(url, "SELECT email, email_verified FROM users")]


@pytest.mark.anyio
async def test_migration_accounts_keeps_the_users_made_before_it(
    old_database: str, make_app: AppFactory, make_client: ClientFactory
) -> None:
    """Earlier users log in, unverified, and can ask for a link and a reset."""
    password_hash = hash_password(PASSWORD)
    rows = store_a_user_before_accounts(old_database, password_hash)
    assert [(email, bool(verified)) for email, verified in rows] == [("Ada@example.com", False)]
    client = await make_client(await make_app(database_url=old_database))
    await login(client, "ada@example.com")
    assert (await client.get("/auth/me")).json()["email_verified"] is False
    assert (await client.post("/auth/verify/request")).status_code == 202
    forgot = await client.post("/auth/password/forgot", json={"email": "ada@example.com"})
    assert forgot.status_code == 202


def test_migration_accounts_downgrade_keeps_the_users(old_database: str) -> None:
    _, before = revisions("accounts")
    migrate_to(old_database, "head")
    run(
        old_database,
        "INSERT INTO users (email, email_canonical, password_hash, is_active, email_verified)"
        " VALUES ('ada@example.com', 'ada@example.com', 'x', TRUE, TRUE)",
    )
    command.downgrade(alembic_config(old_database), before)
    emails = run(old_database, "SELECT email FROM users")
    assert [email for (email,) in emails] == ["ada@example.com"]


def add_users(url: str, *emails: str) -> None:
    run(
        url,
        *(
            f"INSERT INTO users (email, password_hash, is_active) VALUES ('{email}', 'x', TRUE)"
            for email in emails
        ),
    )


def test_migration_0002_normalises_the_emails_stored_before_it(old_database: str) -> None:
    migrate_to(old_database, "0001")
    # "\uff42" is a fullwidth b.
    add_users(old_database, " Ada@Example.com ", "\uff42ob@example.com")
    migrate_to(old_database, "0002")
    emails = run(old_database, "SELECT email FROM users ORDER BY email")
    assert [email for (email,) in emails] == ["ada@example.com", "bob@example.com"]
    # An accented look-alike is another address.
    add_users(old_database, "adá@example.com")


def test_migration_0002_stops_where_two_emails_would_become_one(old_database: str) -> None:
    migrate_to(old_database, "0001")
    add_users(old_database, "eve@example.com", "\uff45ve@example.com")
    with pytest.raises(RuntimeError, match="one address once normalised"):
        migrate_to(old_database, "0002")


def store_an_earlier_user(url: str, password_hash: str) -> list[Any]:
    """A user stored as before 0003 (the email normalised), then 0003 run:
    the users' emails and canonical forms."""
    migrate_to(url, "0002")
    run(
        url,
        "INSERT INTO users (email, password_hash, is_active)"
        f" VALUES ('strasse@example.com', '{password_hash}', TRUE)",
    )
    migrate_to(url, "head")
    return [tuple(row) for row in run(url, "SELECT email, email_canonical FROM users")]


@pytest.mark.anyio
async def test_migration_0003_gives_the_emails_stored_before_it_their_canonical_form(
    old_database: str, make_app: AppFactory, make_client: ClientFactory
) -> None:
    """The users of earlier releases (their emails stored normalised) keep
    their email, log in with its variants, and their address stays taken."""
    password_hash = hash_password(PASSWORD)
    rows = store_an_earlier_user(old_database, password_hash)
    assert rows == [("strasse@example.com", "strasse@example.com")]
    client = await make_client(await make_app(database_url=old_database))
    await login(client, "Straße@Example.com")
    assert (await client.get("/auth/me")).json()["email"] == "strasse@example.com"
    taken = await client.post(
        "/auth/register", json={"email": "STRASSE@example.com", "password": PASSWORD}
    )
    assert taken.status_code == 409


def test_migration_0003_stops_where_two_emails_have_one_canonical_form(
    old_database: str,
) -> None:
    migrate_to(old_database, "0002")
    # Stored after 0002 ran, by hand: not normalised.
    add_users(old_database, "eve@example.com", "EVE@example.com")
    with pytest.raises(RuntimeError, match="one canonical form"):
        migrate_to(old_database, "head")


def test_migration_0003_downgrade_stores_the_canonical_form_again(old_database: str) -> None:
    """Releases before 0003 store and look up the canonical form in `email`."""
    migrate_to(old_database, "head")
    run(
        old_database,
        "INSERT INTO users (email, email_canonical, password_hash, is_active)"
        " VALUES ('Straße@example.com', 'strasse@example.com', 'x', TRUE)",
    )
    command.downgrade(alembic_config(old_database), "0002")
    emails = run(old_database, "SELECT email FROM users")
    assert [email for (email,) in emails] == ["strasse@example.com"]


def store_a_user_before_0004(url: str, password_hash: str) -> list[Any]:
    """A user stored as before 0004 (no credential epoch), then 0004 run:
    the users' epochs."""
    migrate_to(url, "0003")
    run(
        url,
        "INSERT INTO users (email, email_canonical, password_hash, is_active)"
        f" VALUES ('ada@example.com', 'ada@example.com', '{password_hash}', TRUE)",
    )
    migrate_to(url, "head")
    return [tuple(row) for row in run(url, "SELECT credential_epoch FROM users")]


@pytest.mark.anyio
async def test_migration_0004_gives_the_users_stored_before_it_a_credential_epoch(
    old_database: str, make_app: AppFactory, make_client: ClientFactory
) -> None:
    """The users of earlier releases get epoch 0: they log in, and a password
    change raises it and ends their other sessions."""
    password_hash = hash_password(PASSWORD)
    rows = store_a_user_before_0004(old_database, password_hash)
    assert rows == [(0,)]
    app = await make_app(database_url=old_database)
    client, other = await make_client(app), await make_client(app)
    await login(client, "ada@example.com")
    await login(other, "ada@example.com")
    change = {"current_password": PASSWORD, "new_password": "a brand new horse"}
    changed = await client.post("/auth/password", json=change)
    assert changed.status_code == 200
    assert (await other.get("/auth/me")).status_code == 401
    client.headers["Authorization"] = f"Bearer {changed.json()['access_token']}"
    assert (await client.get("/auth/me")).status_code == 200
    epochs = run(old_database, "SELECT credential_epoch FROM users")
    assert epochs == [(1,)]


def store_a_user_before_the_second_factor(url: str, password_hash: str) -> list[Any]:
    """A user stored before the second factor's migration, then every
    migration run: the users' emails and second-factor columns."""
    _, before = revisions("second_factor")
    migrate_to(url, before)
    run(
        url,
        "INSERT INTO users (email, email_canonical, password_hash, is_active)"
        f" VALUES ('Ada@example.com', 'ada@example.com', '{password_hash}', TRUE)",
    )
    migrate_to(url, "head")
    return [
        tuple(row)
        for row in run(url, "SELECT email, totp_secret, totp_pending, totp_step FROM users")
    ]


@pytest.mark.anyio
async def test_migration_second_factor_keeps_the_users_stored_before_it(
    old_database: str, make_app: AppFactory, make_client: ClientFactory
) -> None:
    """The users of earlier releases log in as before, with no second factor,
    and can set one up."""
    password_hash = hash_password(PASSWORD)
    rows = store_a_user_before_the_second_factor(old_database, password_hash)
    assert rows == [("Ada@example.com", None, None, None)]
    client = await make_client(await make_app(database_url=old_database))
    await login(client, "ada@example.com")
    assert (await client.get("/auth/me")).json()["mfa"] is False
    setup = await client.post("/auth/mfa/totp", json={"current_password": PASSWORD})
    assert setup.status_code == 200
    code = pyotp.TOTP(setup.json()["secret"]).now()
    confirmed = await client.post("/auth/mfa/totp/confirm", json={"code": code})
    assert len(confirmed.json()["recovery_codes"]) == 10


def test_migration_second_factor_downgrade_keeps_the_users(old_database: str) -> None:
    """The downgrade turns every second factor off; the users stay."""
    revision, before = revisions("second_factor")
    migrate_to(old_database, revision)
    run(
        old_database,
        "INSERT INTO users (id, email, email_canonical, password_hash, is_active, totp_secret)"
        " VALUES (1, 'ada@example.com', 'ada@example.com', 'x', TRUE, 'encrypted')",
        "INSERT INTO recovery_codes (user_id, code_hash) VALUES (1, 'hash')",
    )
    command.downgrade(alembic_config(old_database), before)
    assert run(old_database, "SELECT email FROM users") == [("ada@example.com",)]
    migrate_to(old_database, "head")
    assert run(old_database, "SELECT totp_secret FROM users") == [(None,)]
