"""The OpenAPI document and the interactive docs: served in dev and test,
off in production unless `API_DOCS` turns them on."""

import pytest

from .conftest import PRODUCTION, AppFactory, ClientFactory

pytestmark = pytest.mark.anyio
DOCS = ("/docs", "/redoc", "/openapi.json")


async def test_docs_are_off_in_production(make_app: AppFactory, make_client: ClientFactory) -> None:
    client = await make_client(await make_app(**PRODUCTION))
    for path in DOCS:
        assert (await client.get(path)).status_code == 404, path


async def test_api_docs_turns_them_on_in_production(
    make_app: AppFactory, make_client: ClientFactory
) -> None:
    client = await make_client(await make_app(**PRODUCTION, api_docs=True))
    for path in DOCS:
        assert (await client.get(path)).status_code == 200, path


async def test_api_docs_turns_them_off_anywhere(
    make_app: AppFactory, make_client: ClientFactory
) -> None:
    client = await make_client(await make_app(api_docs=False))
    assert (await client.get("/openapi.json")).status_code == 404


async def test_error_responses_are_documented(
    make_app: AppFactory, make_client: ClientFactory
) -> None:
    client = await make_client(await make_app(api_docs=True))
    paths = (await client.get("/openapi.json")).json()["paths"]
    login = paths["/auth/login"]["post"]["responses"]
    assert {"401", "413", "422", "429", "503"} <= login.keys()
    assert paths["/auth/register"]["post"]["responses"].keys() >= {"409", "422"}
    order = paths["/orders"]["post"]["responses"]
    assert {"409", "503"} <= order.keys()
    assert "404" in paths["/products/{product_id}"]["get"]["responses"]
