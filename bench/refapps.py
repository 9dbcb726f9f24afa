"""Reference apps measured in the same run as the generated projects.

- ``bare``: FastAPI, no middleware: ``GET /json`` and FastAPI's own ``GET /docs``.
- ``starlette``: Starlette's signed-cookie ``SessionMiddleware`` (the session lives in the
  cookie, no store): ``GET /cart`` reads, ``POST /cart/items`` writes.
- ``starsessions``: starsessions with its Redis store (``REDIS_URL``, ``REDIS_PREFIX``), the
  same two routes.

Served by ``bench/serve.py --app bench.refapps:<name>`` in an environment with fastapi,
uvicorn[standard], starsessions and redis.
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
