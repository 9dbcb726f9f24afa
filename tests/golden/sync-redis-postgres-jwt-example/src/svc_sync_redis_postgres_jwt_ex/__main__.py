"""The production server: `python -m svc_sync_redis_postgres_jwt_ex`.

Granian serves the app, with the settings of `config.py` (HOST, PORT,
WEB_CONCURRENCY, FORWARDED_ALLOW_IPS, REQUEST_HEADER_TIMEOUT, LOG_LEVEL):

- request headers over MAX_HEADER_BYTES get 431;
- a client that has not sent all of a request's headers within
  REQUEST_HEADER_TIMEOUT seconds is disconnected (slow clients hold no
  connection for long), and so is a keep-alive connection idle as long;
- `X-Forwarded-For` and `X-Forwarded-Proto` count only from the proxies in
  FORWARDED_ALLOW_IPS (none by default);
- responses name no server (an empty `Server` header: see `NoServerName`);
  on SIGTERM, requests in flight get SHUTDOWN_TIMEOUT seconds to finish.

`uvicorn svc_sync_redis_postgres_jwt_ex.main:app --reload` stays the server for local work.
"""

import sys
from typing import Any, cast

from granian.constants import HTTPModes, Interfaces
from granian.http import HTTP1Settings
from granian.log import LogLevels
from granian.server import Server
from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from .config import Settings, settings_error
from .logs import SERVER_LOGGERS, configure_logging

# Bytes of a request's line and headers; Granian answers 431 past them.
MAX_HEADER_BYTES = 16 * 1024
# Seconds for requests in flight at SIGTERM; below `docker stop`'s 10 s.
SHUTDOWN_TIMEOUT = 8
# Status 3: failed to start (as uvicorn's), so supervisors do not retry in a loop.
STARTUP_FAILURE = 3


class NoServerName:
    """Granian adds `Server: granian` to a response without a `Server` header
    and cannot be told not to (its issue 594): the app sends an empty one.
    Hand-written: a few lines, no library offers it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_unnamed(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"server"]
                message = {**message, "headers": [*headers, (b"server", b"")]}
            await send(message)

        await self.app(scope, receive, send_unnamed)


def proxied_app() -> ASGIApp:
    """What each worker serves: the app, with the client address and scheme
    taken from `X-Forwarded-For`/`-Proto` only when the peer is a trusted
    proxy (uvicorn's middleware, kept for this; an empty list trusts none)."""
    from .main import app, settings

    # uvicorn's ASGI types are its own, not Starlette's: the same callables.
    proxied = ProxyHeadersMiddleware(
        cast(Any, NoServerName(app)), trusted_hosts=settings.forwarded_allow_ips
    )
    return cast(ASGIApp, proxied)


def main() -> None:
    try:
        settings = Settings()
    except ValidationError as exc:
        print(settings_error(exc), file=sys.stderr)
        raise SystemExit(STARTUP_FAILURE) from None
    configure_logging(settings.log_level)
    # Granian's own loggers send to the root's JSON handler (`logs.py`) at LOG_LEVEL.
    loggers = {name: {"handlers": [], "propagate": True} for name in SERVER_LOGGERS}
    server = Server(
        "svc_sync_redis_postgres_jwt_ex.__main__:proxied_app",
        factory=True,
        address=settings.host,
        port=settings.port,
        interface=Interfaces.ASGI,
        workers=settings.web_concurrency,
        http=HTTPModes.http1,
        websockets=False,
        http1_settings=HTTP1Settings(
            header_read_timeout=settings.request_header_timeout * 1000,
            max_buffer_size=MAX_HEADER_BYTES,
        ),
        log_level=LogLevels(settings.log_level.lower()),
        log_dictconfig={"version": 1, "disable_existing_loggers": False, "loggers": loggers},
        log_access=True,
        workers_kill_timeout=SHUTDOWN_TIMEOUT,
    )
    server.serve()


if __name__ == "__main__":
    main()
