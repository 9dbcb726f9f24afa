"""Request-level defences, applied before any route runs (see SECURITY.md).

- Request bodies over `MAX_BODY_SIZE` bytes get 413, whether declared by
  `Content-Length` or streamed, before a route or the session sees them.
- Responses of requests that used the session get `Cache-Control: no-store`,
  so no shared cache keeps a client's data or tokens.
"""

from fastapi import HTTPException, Request
from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .config import Settings

# 413 Content Too Large (its `status` name changed between Starlette versions).
CONTENT_TOO_LARGE = 413


def mark_session_used(request: Request) -> None:
    """Called by the session dependency: this response must not be cached."""
    request.state.session_used = True


class SecurityMiddleware:
    """Pure ASGI (nothing is buffered): one cheap check per request."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.max_body_size = settings.max_body_size

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

        async def limited_receive() -> Message:
            """Count streamed body bytes (no `Content-Length`, or a false one)."""
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_size:
                    # Raised while the route reads its body: FastAPI answers it.
                    raise HTTPException(CONTENT_TOO_LARGE, "Request body too large")
            return message

        async def send_private(message: Message) -> None:
            if message["type"] == "http.response.start" and state.get("session_used"):
                MutableHeaders(scope=message)["cache-control"] = "no-store"
            await send(message)

        await self.app(scope, limited_receive, send_private)


def refuse(status_code: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status_code)
