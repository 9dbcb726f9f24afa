"""`create_app()`: the application, its middleware, routes and lifespan."""

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from svc_async_sqlite_session_ex.auth.routes import router as auth_router
from svc_async_sqlite_session_ex.config import Settings
from svc_async_sqlite_session_ex.db import create_db_engine, create_sessionmaker
from svc_async_sqlite_session_ex.health import router as health_router
from svc_async_sqlite_session_ex.responses import errors
from svc_async_sqlite_session_ex.security import SecurityMiddleware
from svc_async_sqlite_session_ex.sessions.middleware import SessionMiddleware
from svc_async_sqlite_session_ex.sessions.sql_store import SessionStore
from svc_async_sqlite_session_ex.shop.routes import router as shop_router

logger = logging.getLogger(__name__)


async def purge_expired_sessions_forever(
    maker: async_sessionmaker[AsyncSession],
    interval: float,
) -> None:
    """Expired sessions are refused when read; this removes their rows."""
    while True:
        await asyncio.sleep(interval)
        try:
            async with maker.begin() as db:
                purged = await SessionStore(db).purge_expired(time.time())
            logger.info("purged %d expired sessions", purged)
        except Exception:
            logger.exception("purging expired sessions failed")


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    engine = create_db_engine(settings)
    maker = create_sessionmaker(engine)
    app.state.engine = engine
    app.state.sessionmaker = maker
    purger = asyncio.create_task(
        purge_expired_sessions_forever(maker, settings.session_cleanup_interval)
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
    return JSONResponse({"detail": "Internal Server Error"}, status_code=500)


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
    # Added last, so it runs first: body size, cross-site requests, caching.
    app.add_middleware(SecurityMiddleware, settings=app.state.settings)
    app.add_exception_handler(Exception, internal_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(OperationalError, server_unavailable("Database unavailable"))
    app.include_router(health_router)
    app.include_router(auth_router, responses=errors(400, 413, 503))
    app.include_router(shop_router, responses=errors(400, 413, 503))
    return app
