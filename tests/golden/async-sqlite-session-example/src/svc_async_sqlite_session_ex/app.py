"""`create_app()`: the application, its middleware, routes and lifespan."""

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from asgi_correlation_id import CorrelationIdMiddleware, correlation_id
from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from .auth.routes import router as auth_router
from .config import Settings
from .db import create_db_engine, create_sessionmaker
from .health import router as health_router
from .responses import errors
from .security import SecurityMiddleware
from .sessions.middleware import SessionMiddleware
from .sessions.sql_store import SessionStore
from .shop.routes import router as shop_router

logger = logging.getLogger(__name__)


async def purge_expired_sessions(engine: AsyncEngine) -> int | None:
    """Delete expired sessions; None when another process is purging.

    SQLite's write lock (every transaction begins IMMEDIATE, `db.py`) already
    lets one purge run at a time: another waits, then finds nothing to delete.
    """
    async with AsyncSession(engine) as db, db.begin():
        return await SessionStore(db).purge_expired(time.time())


async def purge_expired_sessions_forever(engine: AsyncEngine, interval: float) -> None:
    """Expired sessions are refused when read; this removes their rows."""
    while True:
        await asyncio.sleep(interval)
        try:
            purged = await purge_expired_sessions(engine)
            if purged is not None:
                logger.info("purged %d expired sessions", purged)
        except Exception:
            logger.exception("purging expired sessions failed")


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    engine = create_db_engine(settings)
    maker = create_sessionmaker(engine, settings)
    app.state.engine = engine
    app.state.sessionmaker = maker
    purger = asyncio.create_task(
        purge_expired_sessions_forever(engine, settings.session_cleanup_interval)
    )
    try:
        yield
    finally:
        purger.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await purger
        await engine.dispose()


async def internal_error(_request: Request, exc: Exception) -> JSONResponse:
    """A JSON 500 with no detail of the failure; the traceback goes to the log."""
    logger.error("unhandled error", exc_info=exc)
    # Answered outside the middleware, so the request id is added here.
    return JSONResponse(
        {"detail": "Internal Server Error"},
        status_code=500,
        headers={"X-Request-ID": correlation_id.get() or ""},
    )


async def invalid_request(_request: Request, exc: Exception) -> JSONResponse:
    """422 naming what is wrong and where, without the submitted values: they
    may be secrets (a password), or not encodable as JSON (NaN, Infinity, an
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


def server_unavailable(detail: str) -> Callable[[Request, Exception], Awaitable[JSONResponse]]:
    """A handler answering 503 (the client may retry) while a server is down;
    the client library reconnects by itself when it is back."""

    async def handler(_request: Request, exc: Exception) -> JSONResponse:
        logger.warning("%s: %s", detail, exc)
        return JSONResponse({"detail": detail}, status_code=status.HTTP_503_SERVICE_UNAVAILABLE)

    return handler


database_unavailable = server_unavailable("Database unavailable")


def connection_lost(exc: DBAPIError) -> bool:
    """Is the database down, or did the request's connection die? SQLAlchemy
    then discards the pooled connections, so later requests reconnect."""
    return isinstance(exc, OperationalError) or exc.connection_invalidated


async def database_error(request: Request, exc: Exception) -> JSONResponse:
    """503 while the database is unreachable; any other database error is a 500."""
    if isinstance(exc, DBAPIError) and connection_lost(exc):
        return await database_unavailable(request, exc)
    return await internal_error(request, exc)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    docs = settings.docs_enabled
    app = FastAPI(
        title="svc async sqlite session ex",
        lifespan=lifespan,
        openapi_url="/openapi.json" if docs else None,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
    )
    app.state.settings = settings
    app.add_middleware(SessionMiddleware, settings=app.state.settings)
    # Runs before the session: body size, cross-site requests, caching.
    app.add_middleware(SecurityMiddleware, settings=app.state.settings)
    if app.state.settings.allowed_origins:
        # Front ends on these origins may call this API from their scripts, with cookies.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=app.state.settings.allowed_origins,
            allow_credentials=True,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Content-Type", "X-CSRF-Token", "X-Request-ID"],
            expose_headers=["X-Request-ID"],
        )
    # Outermost: every response, refusals included, carries `X-Request-ID`, and
    # every log line of the request its id.
    app.add_middleware(CorrelationIdMiddleware)
    app.add_exception_handler(Exception, internal_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(DBAPIError, database_error)
    app.include_router(health_router)
    app.include_router(auth_router, responses=errors(400, 413, 503))
    app.include_router(shop_router, responses=errors(400, 413, 503))
    return app
