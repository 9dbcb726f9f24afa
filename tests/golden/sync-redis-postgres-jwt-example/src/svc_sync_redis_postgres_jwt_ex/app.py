"""`create_app()`: the application, its middleware, routes and lifespan."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from anyio import to_thread
from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import OperationalError

from svc_sync_redis_postgres_jwt_ex.auth.routes import router as auth_router
from svc_sync_redis_postgres_jwt_ex.config import Settings
from svc_sync_redis_postgres_jwt_ex.db import create_db_engine, create_sessionmaker
from svc_sync_redis_postgres_jwt_ex.health import router as health_router
from svc_sync_redis_postgres_jwt_ex.responses import errors
from svc_sync_redis_postgres_jwt_ex.security import SecurityMiddleware
from svc_sync_redis_postgres_jwt_ex.sessions.redis_store import create_redis
from svc_sync_redis_postgres_jwt_ex.shop.routes import router as shop_router

logger = logging.getLogger(__name__)
OTHER_WORKER_THREADS = 40


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    engine = create_db_engine(settings)
    maker = create_sessionmaker(engine)
    app.state.engine = engine
    app.state.sessionmaker = maker
    # Requests wait for a connection in the event loop (`db.reserve_connection`),
    # and the worker threads outnumber the connections: anyio's default 40
    # are left for everything else.
    app.state.connection_slots = asyncio.Semaphore(settings.database_pool_size)
    to_thread.current_default_thread_limiter().total_tokens = (
        settings.database_pool_size + OTHER_WORKER_THREADS
    )
    # Sessions expire in Redis by themselves: nothing to purge.
    redis = create_redis(settings.redis_url)
    app.state.redis = redis
    try:
        yield
    finally:
        redis.close()
        engine.dispose()


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
        title="svc sync redis postgres jwt ex",
        lifespan=lifespan,
        openapi_url="/openapi.json" if docs else None,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
    )
    app.state.settings = settings
    # Added last, so it runs first: body size, caching.
    app.add_middleware(SecurityMiddleware, settings=app.state.settings)
    app.add_exception_handler(Exception, internal_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(RedisConnectionError, server_unavailable("Session store unavailable"))
    app.add_exception_handler(RedisTimeoutError, server_unavailable("Session store unavailable"))
    app.add_exception_handler(OperationalError, server_unavailable("Database unavailable"))
    app.include_router(health_router)
    app.include_router(auth_router, responses=errors(400, 413, 503))
    app.include_router(shop_router, responses=errors(400, 413, 503))
    return app
