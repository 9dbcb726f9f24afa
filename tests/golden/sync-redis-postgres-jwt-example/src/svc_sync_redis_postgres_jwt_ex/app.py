"""`create_app()`: the application, its middleware, routes and lifespan."""

import asyncio
import contextlib
from collections.abc import AsyncIterator

from anyio import to_thread
from asgi_correlation_id import CorrelationIdMiddleware
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from .auth.routes import router as auth_router
from .config import Settings
from .db import create_db_engine, create_sessionmaker
from .db_errors import add_database_error_handlers
from .errors import add_error_handlers
from .health import router as health_router
from .responses import errors
from .security import SecurityMiddleware
from .sessions.redis_errors import add_redis_error_handlers
from .sessions.redis_store import create_redis
from .shop.routes import router as shop_router

OTHER_WORKER_THREADS = 40


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    engine = create_db_engine(settings)
    app.state.engine = engine
    app.state.sessionmaker = create_sessionmaker(engine, settings)
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
    add_error_handlers(app)
    add_database_error_handlers(app)
    add_redis_error_handlers(app)
    app.include_router(health_router)
    app.include_router(auth_router, responses=errors(400, 413, 503))
    app.include_router(shop_router, responses=errors(400, 413, 503))
    return app
