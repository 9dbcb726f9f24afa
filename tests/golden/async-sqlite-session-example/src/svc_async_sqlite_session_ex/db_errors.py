"""The answers to the database's failures: 503 while it is unreachable."""

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import make_url
from sqlalchemy.exc import DBAPIError, OperationalError

from .config import Settings
from .errors import Outage, internal_error, server_unavailable


def database_outage(settings: Settings) -> Outage:
    """The database's `Outage`, named by its file."""
    url = make_url(settings.database_url)
    return Outage("Database", url.database or ":memory:")


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
    return isinstance(exc, OperationalError) or exc.connection_invalidated
