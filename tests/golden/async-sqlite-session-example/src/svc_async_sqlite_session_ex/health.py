"""`GET /health`: is each server this service needs reachable?"""

from fastapi import APIRouter, Request, status
from fastapi.responses import JSONResponse
from sqlalchemy import text

from svc_async_sqlite_session_ex.db import get_sessionmaker

router = APIRouter(tags=["health"])


async def _database_ok(request: Request) -> bool:
    try:
        async with get_sessionmaker(request)() as db:
            await db.execute(text("SELECT 1"))
    except Exception:
        return False
    return True


@router.get("/health")
async def health(request: Request) -> JSONResponse:
    database = "ok" if await _database_ok(request) else "unavailable"
    # Sessions live in the same database.
    sessions = database
    body = {"status": "ok", "database": database, "sessions": sessions}
    if "unavailable" in body.values():
        body["status"] = "unavailable"
        return JSONResponse(body, status.HTTP_503_SERVICE_UNAVAILABLE)
    return JSONResponse(body)
