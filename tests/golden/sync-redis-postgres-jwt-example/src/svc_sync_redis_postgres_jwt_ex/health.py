"""`GET /health`: is each server this service needs reachable?"""

from fastapi import APIRouter, Request, status
from fastapi.responses import JSONResponse
from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import text

from svc_sync_redis_postgres_jwt_ex.db import get_sessionmaker

router = APIRouter(tags=["health"])


def _database_ok(request: Request) -> bool:
    try:
        with get_sessionmaker(request)() as db:
            db.execute(text("SELECT 1"))
    except Exception:
        return False
    return True


def _redis_ok(request: Request) -> bool:
    redis: Redis = request.app.state.redis
    try:
        redis.ping()
    except RedisError:
        return False
    return True


@router.get("/health")
def health(request: Request) -> JSONResponse:
    database = "ok" if _database_ok(request) else "unavailable"
    sessions = "ok" if _redis_ok(request) else "unavailable"
    body = {"status": "ok", "database": database, "sessions": sessions}
    if "unavailable" in body.values():
        body["status"] = "unavailable"
        return JSONResponse(body, status.HTTP_503_SERVICE_UNAVAILABLE)
    return JSONResponse(body)
