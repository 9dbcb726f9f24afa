"""The answers to MongoDB's failures: 503 while it is unreachable, 409 when
a transaction lost a write conflict."""

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse
from pymongo import uri_parser
from pymongo.errors import ConnectionFailure, OperationFailure

from .config import Settings
from .errors import Outage, internal_error, server_unavailable


def database_outage(settings: Settings) -> Outage:
    """The database's `Outage`, named by the hosts and ports of its URL."""
    parsed = uri_parser.parse_uri(settings.database_url)
    where = ",".join(f"{host}:{port}" for host, port in parsed["nodelist"])
    return Outage("Database", where, parsed["password"])


def add_database_error_handlers(app: FastAPI) -> None:
    """503 while MongoDB is unreachable (the outage logged once:
    `app.state.database_outage`, which `db.Heartbeats` tells when MongoDB
    answers again), 409 for a lost write conflict."""
    outage = database_outage(app.state.settings)
    app.state.database_outage = outage
    app.add_exception_handler(ConnectionFailure, server_unavailable("Database unavailable", outage))
    app.add_exception_handler(OperationFailure, transaction_conflict)


async def transaction_conflict(request: Request, exc: Exception) -> JSONResponse:
    """A concurrent transaction wrote the same document first: 409, retry."""
    if isinstance(exc, OperationFailure) and exc.has_error_label("TransientTransactionError"):
        return JSONResponse(
            {"detail": "A concurrent request changed the same data: retry"},
            status_code=status.HTTP_409_CONFLICT,
        )
    return await internal_error(request, exc)
