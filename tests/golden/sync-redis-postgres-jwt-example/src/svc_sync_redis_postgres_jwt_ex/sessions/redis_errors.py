"""The answers to Redis's failures: 503 while the session store is unreachable."""

from collections.abc import Awaitable, Callable

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

from ..config import Settings
from ..errors import Outage, internal_error, server_unavailable
from .redis_client import parse_redis_url

Handler = Callable[[Request, Exception], Awaitable[JSONResponse]]


def redis_outage(settings: Settings) -> Outage:
    """The session store's `Outage`, named by the hosts and ports of its
    `REDIS_URL` (the Sentinels and the service, for a Sentinel-managed master)."""
    target = parse_redis_url(settings.redis_url)
    where = ",".join(f"{host}:{port}" for host, port in target.nodes) or target.url
    if target.kind == "sentinel":
        where = f"{where} (Sentinel service {target.service!r})"
    elif target.kind == "cluster":
        where = f"{where} (Cluster)"
    return Outage("Session store (Redis)", where, target.password)


def add_redis_error_handlers(app: FastAPI) -> None:
    """A request that finds Redis unreachable gets 503, not 500; the outage
    is logged once (`app.state.session_store_outage`, which the store tells
    when Redis answers again)."""
    outage = redis_outage(app.state.settings)
    app.state.session_store_outage = outage
    unavailable = server_unavailable("Session store unavailable", outage)
    # A Sentinel without a master raises MasterNotFoundError, a ConnectionError.
    app.add_exception_handler(RedisConnectionError, unavailable)
    app.add_exception_handler(RedisTimeoutError, unavailable)
    # A Redis Cluster with a master down (until a replica takes over), or out of reach.
    app.add_exception_handler(ClusterDownError, unavailable)
    app.add_exception_handler(RedisClusterException, cluster_error(unavailable))
    app.add_exception_handler(ResponseError, response_error(unavailable))


def cluster_error(unavailable: Handler) -> Handler:
    """redis-py raises RedisClusterException, outside its RedisError, both for a
    Redis Cluster it cannot reach (503) and for a misuse such as one command on
    keys of several slots (a bug: 500)."""

    async def handler(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, SlotNotCoveredError) or "cannot be connected" in str(exc):
            return await unavailable(request, exc)
        return await internal_error(request, exc)

    return handler


def response_error(unavailable: Handler) -> Handler:
    """An error reply: 503 for a REDIS_URL whose database index the server
    does not have (every connection fails until it is fixed); any other,
    such as a command Redis refuses, is a bug: 500."""

    async def handler(request: Request, exc: Exception) -> JSONResponse:
        if "DB index is out of range" in str(exc):
            return await unavailable(request, exc)
        return await internal_error(request, exc)

    return handler
