"""`GET /health`: is each server this service needs reachable?"""

from fastapi import APIRouter, Request, status
from fastapi.responses import JSONResponse
from pymongo.errors import PyMongoError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from svc_async_redis_mongo_none_noex.db import get_mongo

router = APIRouter(tags=["health"])


async def _database_ok(request: Request) -> bool:
    try:
        await get_mongo(request).client.admin.command("ping")
    except PyMongoError:
        return False
    return True


async def _redis_ok(request: Request) -> bool:
    redis: Redis = request.app.state.redis
    try:
        await redis.ping()
    except RedisError:
        return False
    return True


@router.get("/health")
async def health(request: Request) -> JSONResponse:
    database = "ok" if await _database_ok(request) else "unavailable"
    sessions = "ok" if await _redis_ok(request) else "unavailable"
    body = {"status": "ok", "database": database, "sessions": sessions}
    if "unavailable" in body.values():
        body["status"] = "unavailable"
        return JSONResponse(body, status.HTTP_503_SERVICE_UNAVAILABLE)
    return JSONResponse(body)
