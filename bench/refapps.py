"""Reference apps measured in the same run as the generated projects.

- ``bare``: FastAPI, no middleware: ``GET /json`` and FastAPI's own ``GET /docs``.
- ``starlette``: Starlette's signed-cookie ``SessionMiddleware`` (the session lives in the
  cookie, no store): ``GET /cart`` reads, ``POST /cart/items`` writes.
- ``starsessions``: starsessions with its Redis store (``REDIS_URL``, ``REDIS_PREFIX``), the
  same two routes.
- ``fastapi_users_jwt`` and ``fastapi_users_db``: fastapi-users on async SQLAlchemy + asyncpg
  (``DATABASE_URL``, a PostgreSQL database of the benchmark's own), set up as its documentation
  does it: ``POST /auth/register``, ``POST /auth/login`` (form: username, password) and
  ``GET /users/me``, with the bearer transport and either its JWT strategy (decode the token,
  then one SELECT of the user) or its database strategy (the token is a row of the
  ``accesstoken`` table: a SELECT of the token, then one of the user).

Served by ``bench/serve.py --app bench.refapps:<name>`` in an environment with fastapi,
uvicorn[standard], starsessions, redis, fastapi-users[sqlalchemy] and asyncpg
(``bench.run.REF_DEPS``).
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI, Request


def _cart_routes(app: FastAPI, *, load: Any = None) -> None:
    @app.get("/cart")
    async def get_cart(request: Request) -> dict[str, Any]:
        if load is not None:
            await load(request)
        return {"items": request.session.get("cart", {})}

    @app.post("/cart/items")
    async def add_item(request: Request) -> dict[str, Any]:
        if load is not None:
            await load(request)
        cart = dict(request.session.get("cart", {}))
        cart["1"] = cart.get("1", 0) + 1
        request.session["cart"] = cart
        return {"items": cart}


def bare() -> FastAPI:
    app = FastAPI()

    @app.get("/json")
    async def json_route() -> dict[str, bool]:
        return {"ok": True}

    return app


def starlette() -> FastAPI:
    from starlette.middleware.sessions import SessionMiddleware

    app = FastAPI()
    app.add_middleware(SessionMiddleware, secret_key="x" * 32, https_only=False)
    _cart_routes(app)
    return app


def starsessions() -> FastAPI:
    from starsessions import SessionMiddleware, load_session
    from starsessions.stores.redis import RedisStore

    store = RedisStore(
        url=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        prefix=os.environ.get("REDIS_PREFIX", "sfbench:starsessions:"),
    )
    app = FastAPI()
    app.add_middleware(SessionMiddleware, store=store, lifetime=1800, cookie_https_only=False)
    _cart_routes(app, load=load_session)
    return app


# --------------------------------------------------------------------------- fastapi-users


def _fastapi_users(strategy: str) -> FastAPI:
    """fastapi-users with the bearer transport and the `jwt` or the `db` (AccessToken) strategy."""
    import uuid
    from collections.abc import AsyncIterator
    from contextlib import asynccontextmanager

    from fastapi import Depends
    from fastapi_users import BaseUserManager, FastAPIUsers, UUIDIDMixin, schemas
    from fastapi_users.authentication import AuthenticationBackend, BearerTransport, JWTStrategy
    from fastapi_users.authentication.strategy.db import DatabaseStrategy
    from fastapi_users_db_sqlalchemy import SQLAlchemyBaseUserTableUUID, SQLAlchemyUserDatabase
    from fastapi_users_db_sqlalchemy.access_token import (
        SQLAlchemyAccessTokenDatabase,
        SQLAlchemyBaseAccessTokenTableUUID,
    )
    from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
    from sqlalchemy.orm import DeclarativeBase

    secret = os.environ.get("SECRET_KEY", "x" * 64)
    url = os.environ["DATABASE_URL"].replace("postgresql://", "postgresql+asyncpg://", 1)
    # The same pool as a generated async service's default: 10 connections, no overflow.
    engine = create_async_engine(url, pool_size=10, max_overflow=0)
    session_maker = async_sessionmaker(engine, expire_on_commit=False)

    class Base(DeclarativeBase):
        pass

    class User(SQLAlchemyBaseUserTableUUID, Base):
        pass

    class AccessToken(SQLAlchemyBaseAccessTokenTableUUID, Base):
        pass

    class UserRead(schemas.BaseUser[uuid.UUID]):
        pass

    class UserCreate(schemas.BaseUserCreate):
        pass

    async def get_session() -> AsyncIterator[AsyncSession]:
        async with session_maker() as session:
            yield session

    # Dependencies as defaults (B008), as fastapi-users' documentation writes them: these
    # functions are local, so string annotations (`from __future__`) inside `Annotated`
    # would not resolve, and FastAPI would take the parameter for a query field.
    async def get_user_db(
        session: AsyncSession = Depends(get_session),  # noqa: B008
    ) -> AsyncIterator[Any]:
        yield SQLAlchemyUserDatabase(session, User)

    async def get_token_db(
        session: AsyncSession = Depends(get_session),  # noqa: B008
    ) -> AsyncIterator[Any]:
        yield SQLAlchemyAccessTokenDatabase(session, AccessToken)

    class UserManager(UUIDIDMixin, BaseUserManager[User, uuid.UUID]):
        reset_password_token_secret = secret
        verification_token_secret = secret

    async def get_user_manager(
        user_db: Any = Depends(get_user_db),  # noqa: B008
    ) -> AsyncIterator[Any]:
        yield UserManager(user_db)

    if strategy == "jwt":

        def get_strategy() -> Any:
            return JWTStrategy(secret=secret, lifetime_seconds=3600)

    else:

        def get_strategy(token_db: Any = Depends(get_token_db)) -> Any:  # noqa: B008
            return DatabaseStrategy(token_db, lifetime_seconds=3600)

    backend = AuthenticationBackend(
        name=strategy,
        transport=BearerTransport(tokenUrl="auth/login"),
        get_strategy=get_strategy,
    )
    users = FastAPIUsers[User, uuid.UUID](get_user_manager, [backend])

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        yield
        await engine.dispose()

    app = FastAPI(lifespan=lifespan)
    app.state.engine = engine  # for bench/serve.py's pool report
    app.include_router(users.get_auth_router(backend), prefix="/auth")
    app.include_router(users.get_register_router(UserRead, UserCreate), prefix="/auth")
    app.include_router(users.get_users_router(UserRead, schemas.BaseUserUpdate), prefix="/users")

    @app.get("/health")
    async def health() -> dict[str, bool]:
        return {"ok": True}

    return app


def fastapi_users_jwt() -> FastAPI:
    return _fastapi_users("jwt")


def fastapi_users_db() -> FastAPI:
    return _fastapi_users("db")
