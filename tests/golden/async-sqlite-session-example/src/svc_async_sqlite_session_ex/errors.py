"""The JSON answers to failures no route handles: a 500 that hides the
failure, a 422 that does not echo the input, a 503 while a server is down."""

import logging
from collections.abc import Awaitable, Callable

from asgi_correlation_id import correlation_id
from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from .headers import error_headers

logger = logging.getLogger(__name__)


def add_error_handlers(app: FastAPI) -> None:
    """Any exception a route lets through is a 500; invalid input a 422."""
    app.add_exception_handler(Exception, internal_error)
    app.add_exception_handler(RequestValidationError, invalid_request)


async def internal_error(request: Request, exc: Exception) -> JSONResponse:
    """A JSON 500 with no detail of the failure; the traceback goes to the log."""
    logger.error("unhandled error", exc_info=exc)
    # Answered outside the middleware, so the request id and the security
    # headers are added here.
    return JSONResponse(
        {"detail": "Internal Server Error"},
        status_code=500,
        headers={
            "X-Request-ID": correlation_id.get() or "",
            **error_headers(request.app.state.settings),
        },
    )


async def invalid_request(_request: Request, exc: Exception) -> JSONResponse:
    """422 naming what is wrong and where, without the submitted values: they
    may be secrets, or not encodable as JSON (NaN, Infinity, an
    unpaired surrogate)."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    detail = [
        {
            "type": error["type"],
            "loc": [safe_text(part) for part in error["loc"]],
            "msg": safe_text(error["msg"]),
        }
        for error in errors
    ]
    return JSONResponse({"detail": detail}, status_code=422)


def safe_text(value: object) -> object:
    """`value`, or for text, text that encodes as UTF-8 (surrogates replaced)."""
    if isinstance(value, str):
        return value.encode(errors="replace").decode()
    return value


class Outage:
    """One server as this process's requests find it. The first request that
    finds it unreachable (after start-up, or after it was reached again)
    logs one line naming it, where it is (`where`: host and port, never a
    secret of its URL) and why; the other failures of that outage log nothing."""

    def __init__(self, server: str, where: str, secret: str | None = None) -> None:
        self.server = server
        self.where = where
        # Kept out of the log line, should an error message quote it.
        self.secret = secret
        self.down = False

    def failed(self, exc: Exception) -> None:
        if self.down:
            return
        self.down = True
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if self.secret:
            reason = reason.replace(self.secret, "***")
        logger.warning("%s unreachable at %s: %s", self.server, self.where, reason)

    def reached(self) -> None:
        """The server answered: its next failure starts a new outage."""
        if self.down:
            self.down = False
            logger.info("%s reachable again at %s", self.server, self.where)


def server_unavailable(
    detail: str, outage: Outage
) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    """A handler answering 503 (the client may retry) while a server is down,
    logging the outage once; the client library reconnects by itself when
    it is back."""

    async def handler(_request: Request, exc: Exception) -> JSONResponse:
        outage.failed(exc)
        return JSONResponse({"detail": detail}, status_code=status.HTTP_503_SERVICE_UNAVAILABLE)

    return handler
