"""The PostgreSQL engine, directly or through PgBouncer in transaction mode, and
how its failures read."""

from typing import Any

from sqlalchemy import Engine, create_engine, make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from .config import Settings
from .errors import Outage

# SQLSTATEs of a lost connection (class 08), of a server out of resources
# (53: too many connections, memory, disk) and of one shutting down or starting
# up (57P01-57P03), and of a misconfigured connection: wrong credentials
# (28) or a database that does not exist (3D000). psycopg raises
# OperationalError for them; asyncpg does not.
UNAVAILABLE_SQLSTATES = ("08", "28", "3D000", "53", "57P")


def create_db_engine(settings: Settings) -> Engine:
    """Create the engine (it connects lazily, on first use)."""
    connect_args: dict[str, Any] = {}
    if settings.database_pgbouncer:
        # PgBouncer in transaction mode runs each transaction on any of its
        # server connections, so a statement prepared in one transaction is
        # missing (or its name taken) in the next.
        # psycopg prepares a query once a connection has run it 5 times
        # (`prepare_threshold`); None: never.
        connect_args = {"prepare_threshold": None}
    # A fixed pool without overflow: under load a request waits for a pooled
    # connection instead of opening (and closing) extra ones.
    # Connections are not pinged before each use (a round trip per request):
    # one the server dropped fails a single request, and the pool then
    # replaces them all.
    return create_engine(
        settings.database_url,
        pool_size=settings.database_pool_size,
        max_overflow=0,
        pool_recycle=3600,
        connect_args=connect_args,
        # Errors (and so log lines) show statements without their values: no
        # secret (a session id, say) reaches a log.
        hide_parameters=True,
    )


def autocommit_reader(engine: Engine, settings: Settings) -> Engine | None:
    """The engine for `db.read_row`'s reads outside a transaction. None
    through PgBouncer in transaction mode: there a statement runs on any
    server connection unless a transaction holds one, so reads stay in
    transactions."""
    if settings.database_pgbouncer:
        return None
    return engine.execution_options(isolation_level="AUTOCOMMIT")


def database_outage(settings: Settings) -> Outage:
    """The database's `Outage` (`db_errors.py`), named by host and port."""
    url = make_url(settings.database_url)
    port = url.port or 5432
    return Outage("Database", f"{url.host or 'localhost'}:{port}", url.password)


def connection_lost(exc: DBAPIError) -> bool:
    """Is the database down, or did the request's connection die? SQLAlchemy
    then discards the pooled connections, so later requests reconnect."""
    sqlstate: str = getattr(exc.orig, "sqlstate", None) or ""
    return (
        isinstance(exc, OperationalError)
        or exc.connection_invalidated
        or sqlstate.startswith(UNAVAILABLE_SQLSTATES)
    )
