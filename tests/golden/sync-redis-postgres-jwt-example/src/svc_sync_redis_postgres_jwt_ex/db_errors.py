"""The answers to the database's failures: 503 while it is unreachable."""

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from .config import Settings
from .errors import Outage, internal_error, server_unavailable

# SQLSTATEs of a lost connection (class 08), of a server out of resources
# (53: too many connections, memory, disk) and of one shutting down or starting
# up (57P01-57P03), and of a misconfigured connection: wrong credentials
# (28) or a database that does not exist (3D000). psycopg raises
# OperationalError for them; asyncpg does not.
UNAVAILABLE_SQLSTATES = ("08", "28", "3D000", "53", "57P")


def database_outage(settings: Settings) -> Outage:
    """The database's `Outage`, named by host and port."""
    url = make_url(settings.database_url)
    port = url.port or 5432
    return Outage("Database", f"{url.host or 'localhost'}:{port}", url.password)


def add_database_error_handlers(app: FastAPI) -> None:
    """A request that finds the database unreachable gets 503, not 500; the
    outage is logged once (`app.state.database_outage`, which `db.running`
    tells when the database is reached again)."""
    outage = database_outage(app.state.settings)
    app.state.database_outage = outage
    database_unavailable = server_unavailable("Database unavailable", outage)
    app.add_exception_handler(DBAPIError, database_error(database_unavailable))


Handler = Callable[[Request, Exception], Awaitable[JSONResponse]]


def database_error(database_unavailable: Handler) -> Handler:
    """503 while the database is unreachable; any other database error is a 500."""

    async def handler(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, DBAPIError) and connection_lost(exc):
            return await database_unavailable(request, exc)
        return await internal_error(request, exc)

    return handler


def connection_lost(exc: DBAPIError) -> bool:
    """Is the database down, or did the request's connection die? SQLAlchemy
    then discards the pooled connections, so later requests reconnect."""
    sqlstate: str = getattr(exc.orig, "sqlstate", None) or ""
    return (
        isinstance(exc, OperationalError)
        or exc.connection_invalidated
        or sqlstate.startswith(UNAVAILABLE_SQLSTATES)
    )
