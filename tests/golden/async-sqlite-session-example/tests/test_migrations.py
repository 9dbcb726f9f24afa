"""Migrations 0002 (the emails stored before it get their one normalised
form) and 0003 (emails kept as given, beside their canonical form)."""

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from anyio import to_thread
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from svc_async_sqlite_session_ex.auth.passwords import hash_password
from svc_async_sqlite_session_ex.database_url import normalize_database_url

from .conftest import ROOT, AppFactory, ClientFactory, login

PASSWORD = "correct horse"


@pytest.fixture
def old_database(tmp_path: Path) -> Iterator[str]:
    """An empty database file of this test's own."""
    yield f"sqlite:///{tmp_path / 'old.db'}"


def alembic_config(url: str) -> Config:
    config = Config(ROOT / "alembic.ini")
    config.set_main_option("sqlalchemy.url", url)
    return config


def migrate_to(url: str, revision: str) -> None:
    command.upgrade(alembic_config(url), revision)


def run(url: str, *statements: str) -> list[Any]:
    """Run statements in one transaction; returns the last one's rows."""

    async def go() -> list[Any]:
        engine = create_async_engine(normalize_database_url(url))
        async with engine.begin() as connection:
            for statement in statements:
                result = await connection.execute(text(statement))
            rows = list(result.all()) if result.returns_rows else []
        await engine.dispose()
        return rows

    return asyncio.run(go())


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
    password_hash = await hash_password(PASSWORD)
    # Alembic and `run` run event loops of their own: not in this one's thread.
    rows = await to_thread.run_sync(store_an_earlier_user, old_database, password_hash)
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
