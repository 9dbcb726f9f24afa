"""`create_app()`: the application, its middleware, routes and lifespan."""

import contextlib
from collections.abc import AsyncIterator

from asgi_correlation_id import CorrelationIdMiddleware
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from secure.middleware import SecureASGIMiddleware

from . import db
from .auth.passwords import limit_hashing
from .auth.routes import router as auth_router
from .config import Settings
from .db_errors import add_database_error_handlers
from .errors import add_error_handlers
from .headers import security_headers
from .health import router as health_router
from .mail import sender
from .responses import errors
from .security import SecurityMiddleware
from .sessions import store
from .sessions.middleware import SessionMiddleware
from .shop.routes import router as shop_router


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The database's client, then the session store's, then the mail sender,
    for as long as the application runs (`db.running`, `sessions.store.running`,
    `mail.sender.running`)."""
    async with db.running(app), store.running(app), sender.running(app):
        yield


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
    limit_hashing(settings)
    app.add_middleware(SessionMiddleware, settings=app.state.settings)
    # Runs before the session: body size, caching.
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
    # Outside even that: every response carries the security headers (`headers.py`).
    app.add_middleware(SecureASGIMiddleware, secure=security_headers(app.state.settings))
    add_error_handlers(app)
    add_database_error_handlers(app)
    store.add_store_error_handlers(app)
    app.include_router(health_router)
    app.include_router(auth_router, responses=errors(400, 413, 503))
    app.include_router(shop_router, responses=errors(400, 413, 503))
    return app
