"""The answers to the database's failures: 503 while it is unreachable."""

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError

from .engine import connection_lost, database_outage
from .errors import internal_error, server_unavailable


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
