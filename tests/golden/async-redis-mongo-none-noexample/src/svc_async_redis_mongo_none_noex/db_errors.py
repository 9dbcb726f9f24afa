"""The answers to MongoDB's failures: 503 while it is unreachable, 409 when
a transaction lost a write conflict."""

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse
from pymongo.errors import ConnectionFailure, OperationFailure

from .errors import internal_error, server_unavailable


def add_database_error_handlers(app: FastAPI) -> None:
    """503 while MongoDB is unreachable, 409 for a lost write conflict."""
    app.add_exception_handler(ConnectionFailure, server_unavailable("Database unavailable"))
    app.add_exception_handler(OperationFailure, transaction_conflict)


async def transaction_conflict(request: Request, exc: Exception) -> JSONResponse:
    """A concurrent transaction wrote the same document first: 409, retry."""
    if isinstance(exc, OperationFailure) and exc.has_error_label("TransientTransactionError"):
        return JSONResponse(
            {"detail": "A concurrent request changed the same data: retry"},
            status_code=status.HTTP_409_CONFLICT,
        )
    return await internal_error(request, exc)
