"""Security headers on every response: successes, errors, 404s, refusals, 500s."""

from typing import Any

import pytest
from fastapi import FastAPI
from httpx import Response

from .conftest import PRODUCTION, AppFactory, ClientFactory

pytestmark = pytest.mark.anyio
ORIGIN = "https://app.example.com"
HSTS = "max-age=63072000; includeSubDomains"


def add_failing_route(app: FastAPI) -> None:
    @app.get("/test/error")
    async def error() -> None:
        raise RuntimeError("a bug in a route")


async def responses_of_every_kind(
    make_app: AppFactory, make_client: ClientFactory, **overrides: Any
) -> list[Response]:
    app = await make_app(max_body_size=16, allowed_origins=[ORIGIN], **overrides)
    add_failing_route(app)
    client = await make_client(app, raise_app_exceptions=False)
    preflight = {"Origin": ORIGIN, "Access-Control-Request-Method": "GET"}
    responses = [
        await client.get("/health/live"),
        await client.get("/nowhere"),
        await client.delete("/health/live"),
        # Refused before any route runs.
        await client.post("/health/live", content=b"x" * 17),
        # Answered by the CORS middleware.
        await client.options("/health/live", headers=preflight),
        # Answered outside every middleware.
        await client.get("/test/error"),
    ]
    assert [response.status_code for response in responses] == [200, 404, 405, 413, 200, 500]
    return responses


async def test_every_response_carries_the_security_headers(
    make_app: AppFactory, make_client: ClientFactory
) -> None:
    for response in await responses_of_every_kind(make_app, make_client):
        where = f"{response.request.method} {response.request.url.path}"
        assert response.headers.get("X-Content-Type-Options") == "nosniff", where
        policy = response.headers.get("Content-Security-Policy", "")
        assert "frame-ancestors 'none'" in policy, where
        assert response.headers.get("X-Frame-Options") == "DENY", where
        assert response.headers.get("Referrer-Policy") == "no-referrer", where
        assert response.headers.get_list("X-Content-Type-Options") == ["nosniff"], where


async def test_hsts_is_sent_in_production(make_app: AppFactory, make_client: ClientFactory) -> None:
    for response in await responses_of_every_kind(make_app, make_client, **PRODUCTION):
        assert response.headers.get("Strict-Transport-Security") == HSTS
    for response in await responses_of_every_kind(make_app, make_client):
        assert "Strict-Transport-Security" not in response.headers
