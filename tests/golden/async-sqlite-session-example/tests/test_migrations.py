"""Migration 0002: the emails stored before it get their one normalised form."""

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from svc_async_sqlite_session_ex.database_url import normalize_database_url

from .conftest import ROOT


@pytest.fixture
def old_database(tmp_path: Path) -> Iterator[str]:
    """An empty database file of this test's own."""
    yield f"sqlite:///{tmp_path / 'old.db'}"


def migrate_to(url: str, revision: str) -> None:
    config = Config(ROOT / "alembic.ini")
    config.set_main_option("sqlalchemy.url", url)
    command.upgrade(config, revision)


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
    migrate_to(old_database, "head")
    emails = run(old_database, "SELECT email FROM users ORDER BY email")
    assert [email for (email,) in emails] == ["ada@example.com", "bob@example.com"]
    # An accented look-alike is another address.
    add_users(old_database, "adá@example.com")


def test_migration_0002_stops_where_two_emails_would_become_one(old_database: str) -> None:
    migrate_to(old_database, "0001")
    add_users(old_database, "eve@example.com", "\uff45ve@example.com")
    with pytest.raises(RuntimeError, match="one address once normalised"):
        migrate_to(old_database, "head")
