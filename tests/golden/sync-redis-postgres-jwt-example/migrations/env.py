"""Alembic environment: migrates the database named by the service's settings."""

from alembic import context
from sqlalchemy import create_engine

import svc_sync_redis_postgres_jwt_ex.models  # noqa: F401  (defines the tables on Base.metadata)
from svc_sync_redis_postgres_jwt_ex.config import Settings
from svc_sync_redis_postgres_jwt_ex.database_url import normalize_database_url
from svc_sync_redis_postgres_jwt_ex.db import Base

target_metadata = Base.metadata


def database_url() -> str:
    """The service's DATABASE_URL, unless the caller set `sqlalchemy.url` (the tests do)."""
    url = context.config.get_main_option("sqlalchemy.url")
    return normalize_database_url(url) if url else Settings(environment="dev").database_url


def run_migrations_offline() -> None:
    context.configure(url=database_url(), target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(database_url())
    with engine.connect() as connection:
        context.configure(
            connection=connection, target_metadata=target_metadata, render_as_batch=True
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
