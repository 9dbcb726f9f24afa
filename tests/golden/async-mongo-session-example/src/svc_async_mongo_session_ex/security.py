"""Request-level defences, applied before any route runs (see SECURITY.md).

- Request bodies over `MAX_BODY_SIZE` bytes get 413, whether declared by
  `Content-Length` or streamed, before a route or the session sees them.
- A body not received within `REQUEST_BODY_TIMEOUT` seconds of the route's
  first read gets 408: a client trickling its body holds no worker for long
  (the server bounds the time for headers, `__main__.py`).
- Responses of requests that used the session get `Cache-Control: no-store`,
  so no shared cache keeps a client's data or a session cookie.
"""

import asyncio
import time

from fastapi import HTTPException, Request
from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .config import Settings

# 413 Content Too Large (its `status` name changed between Starlette versions).
CONTENT_TOO_LARGE = 413
REQUEST_TIMEOUT = 408


def mark_session_used(request: Request) -> None:
    """Called by the session dependency: this response must not be cached."""
    request.state.session_used = True


class SecurityMiddleware:
    """Pure ASGI (nothing is buffered): one cheap check per request."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.max_body_size = settings.max_body_size
        self.body_timeout = settings.request_body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body_size):
            await refuse(CONTENT_TOO_LARGE, "Request body too large")(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        received = 0
        # When the body must be in (set at the first read); None once it is.
        deadline: float | None = -1.0

        async def limited_receive() -> Message:
            """Count streamed body bytes (no `Content-Length`, or a false one),
            and bound the time the body takes to arrive. The exceptions are
            raised while the route reads its body: FastAPI answers them."""
            nonlocal received, deadline
            if deadline is None:  # the body is in: wait for the disconnect as long as needed
                return await receive()
            if deadline < 0:
                deadline = time.monotonic() + self.body_timeout
            try:
                message = await asyncio.wait_for(receive(), deadline - time.monotonic())
            except TimeoutError:
                raise HTTPException(REQUEST_TIMEOUT, "Request body not received in time") from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_size:
                    raise HTTPException(CONTENT_TOO_LARGE, "Request body too large")
                if not message.get("more_body", False):
                    deadline = None
            return message

        async def send_private(message: Message) -> None:
            if message["type"] == "http.response.start" and state.get("session_used"):
                MutableHeaders(scope=message)["cache-control"] = "no-store"
            await send(message)

        await self.app(scope, limited_receive, send_private)


def refuse(status_code: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status_code)
