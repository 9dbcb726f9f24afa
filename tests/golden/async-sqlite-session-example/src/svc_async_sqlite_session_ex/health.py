"""Health probes: `GET /health/live`, does the process answer (for a liveness
probe: a database outage must not restart it); `GET /health/ready` and
`GET /health`, is each server this service needs reachable (readiness)."""

from fastapi import APIRouter, Request, status
from fastapi.responses import JSONResponse

from .db import database_ok
from .sessions.store import store_ok

router = APIRouter(tags=["health"])


@router.get("/health/live")
async def live() -> dict[str, str]:
    """No I/O: answers while the event loop runs."""
    return {"status": "ok"}


@router.get("/health")
@router.get("/health/ready")
async def health(request: Request) -> JSONResponse:
    database_up = await database_ok(request)
    sessions_up = await store_ok(request, database_up)
    body = {
        "status": "ok",
        "database": "ok" if database_up else "unavailable",
        "sessions": "ok" if sessions_up else "unavailable",
    }
    if "unavailable" in body.values():
        body["status"] = "unavailable"
        return JSONResponse(body, status.HTTP_503_SERVICE_UNAVAILABLE)
    return JSONResponse(body)
