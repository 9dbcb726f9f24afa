"""`create_app()`: the application, its middleware, routes and lifespan."""

import contextlib
from collections.abc import AsyncIterator

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
from .sessions.middleware import SessionMiddleware
from .sessions.purge import purging_expired_sessions
from .shop.routes import router as shop_router


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    engine = create_db_engine(settings)
    app.state.engine = engine
    app.state.sessionmaker = create_sessionmaker(engine)
    try:
        async with purging_expired_sessions(engine, settings.session_cleanup_interval):
            yield
    finally:
        await engine.dispose()


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
    add_error_handlers(app)
    add_database_error_handlers(app)
    app.include_router(health_router)
    app.include_router(auth_router, responses=errors(400, 413, 503))
    app.include_router(shop_router, responses=errors(400, 413, 503))
    return app
