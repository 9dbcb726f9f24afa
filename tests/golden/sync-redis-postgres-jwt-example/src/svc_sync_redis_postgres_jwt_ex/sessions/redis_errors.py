"""The answers to Redis's failures: 503 while the session store is unreachable."""

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from redis.exceptions import (
    ClusterDownError,
    RedisClusterException,
    ResponseError,
    SlotNotCoveredError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..errors import internal_error, server_unavailable

session_store_unavailable = server_unavailable("Session store unavailable")


def add_redis_error_handlers(app: FastAPI) -> None:
    """A request that finds Redis unreachable gets 503, not 500."""
    app.add_exception_handler(RedisConnectionError, session_store_unavailable)
    app.add_exception_handler(RedisTimeoutError, session_store_unavailable)
    # A Redis Cluster with a master down (until a replica takes over), or out of reach.
    app.add_exception_handler(ClusterDownError, session_store_unavailable)
    app.add_exception_handler(RedisClusterException, cluster_error)
    app.add_exception_handler(ResponseError, response_error)


async def cluster_error(request: Request, exc: Exception) -> JSONResponse:
    """redis-py raises RedisClusterException, outside its RedisError, both for a
    Redis Cluster it cannot reach (503) and for a misuse such as one command on
    keys of several slots (a bug: 500)."""
    if isinstance(exc, SlotNotCoveredError) or "cannot be connected" in str(exc):
        return await session_store_unavailable(request, exc)
    return await internal_error(request, exc)


async def response_error(request: Request, exc: Exception) -> JSONResponse:
    """An error reply: 503 for a REDIS_URL whose database index the server
    does not have (every connection fails until it is fixed); any other,
    such as a command Redis refuses, is a bug: 500."""
    if "DB index is out of range" in str(exc):
        return await session_store_unavailable(request, exc)
    return await internal_error(request, exc)
