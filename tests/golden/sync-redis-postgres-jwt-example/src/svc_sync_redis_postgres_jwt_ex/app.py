"""`create_app()`: the application, its middleware, routes and lifespan."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from anyio import to_thread
from asgi_correlation_id import CorrelationIdMiddleware, correlation_id
from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from redis.exceptions import ClusterDownError, RedisClusterException, SlotNotCoveredError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import DBAPIError, OperationalError

from .auth.routes import router as auth_router
from .config import Settings
from .db import create_db_engine, create_sessionmaker
from .health import router as health_router
from .responses import errors
from .security import SecurityMiddleware
from .sessions.redis_store import create_redis
from .shop.routes import router as shop_router

logger = logging.getLogger(__name__)
OTHER_WORKER_THREADS = 40


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    engine = create_db_engine(settings)
    maker = create_sessionmaker(engine, settings)
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


# SQLSTATEs of a lost connection (class 08), of a server out of resources
# (53: too many connections, memory, disk) and of one shutting down or starting
# up (57P01-57P03). psycopg raises OperationalError for them; asyncpg does not.
UNAVAILABLE_SQLSTATES = ("08", "53", "57P")


def connection_lost(exc: DBAPIError) -> bool:
    """Is the database down, or did the request's connection die? SQLAlchemy
    then discards the pooled connections, so later requests reconnect."""
    sqlstate: str = getattr(exc.orig, "sqlstate", None) or ""
    return (
        isinstance(exc, OperationalError)
        or exc.connection_invalidated
        or sqlstate.startswith(UNAVAILABLE_SQLSTATES)
    )


async def database_error(request: Request, exc: Exception) -> JSONResponse:
    """503 while the database is unreachable; any other database error is a 500."""
    if isinstance(exc, DBAPIError) and connection_lost(exc):
        return await database_unavailable(request, exc)
    return await internal_error(request, exc)


async def cluster_error(request: Request, exc: Exception) -> JSONResponse:
    """redis-py raises RedisClusterException, outside its RedisError, both for a
    Redis Cluster it cannot reach (503) and for a misuse such as one command on
    keys of several slots (a bug: 500)."""
    if isinstance(exc, SlotNotCoveredError) or "cannot be connected" in str(exc):
        return await server_unavailable("Session store unavailable")(request, exc)
    return await internal_error(request, exc)


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
    # Runs before the session: body size, caching.
    app.add_middleware(SecurityMiddleware, settings=app.state.settings)
    if app.state.settings.allowed_origins:
        # Front ends on these origins may call this API from their scripts.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=app.state.settings.allowed_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Content-Type", "Authorization", "X-Request-ID"],
            expose_headers=["X-Request-ID"],
        )
    # Outermost: every response, refusals included, carries `X-Request-ID`, and
    # every log line of the request its id.
    app.add_middleware(CorrelationIdMiddleware)
    app.add_exception_handler(Exception, internal_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(RedisConnectionError, server_unavailable("Session store unavailable"))
    app.add_exception_handler(RedisTimeoutError, server_unavailable("Session store unavailable"))
    # A Redis Cluster with a master down (until a replica takes over), or out of reach.
    app.add_exception_handler(ClusterDownError, server_unavailable("Session store unavailable"))
    app.add_exception_handler(RedisClusterException, cluster_error)
    app.add_exception_handler(DBAPIError, database_error)
    app.include_router(health_router)
    app.include_router(auth_router, responses=errors(400, 413, 503))
    app.include_router(shop_router, responses=errors(400, 413, 503))
    return app
