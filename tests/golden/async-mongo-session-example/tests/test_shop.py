"""The shop: a cart in the session, orders in one transaction with it."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient

from svc_async_mongo_session_ex.db import UnitOfWork

from .conftest import ClientFactory, Database, SessionProbe

pytestmark = pytest.mark.anyio
ShopperFactory = Callable[..., Awaitable[AsyncClient]]


async def add_product(client: AsyncClient, stock: int = 5, price_cents: int = 250) -> int:
    body = {"name": "Teapot", "price_cents": price_cents, "stock": stock}
    response = await client.post("/products", json=body)
    assert response.status_code == 201, response.text
    assert response.json() == {"id": response.json()["id"], **body}
    product_id: int = response.json()["id"]
    return product_id


async def add_to_cart(client: AsyncClient, product_id: int, quantity: int) -> dict[str, Any]:
    response = await client.post(
        "/cart/items", json={"product_id": product_id, "quantity": quantity}
    )
    assert response.status_code == 200, response.text
    cart: dict[str, Any] = response.json()
    return cart


async def stock(database: Database, product_id: int) -> int:
    [product] = await database.documents("products", {"_id": product_id})
    value: int = product["stock"]
    return value


async def order_count(database: Database) -> int:
    return len(await database.documents("orders"))


async def test_products_can_be_created_and_read(shopper: AsyncClient) -> None:
    product_id = await add_product(shopper)
    response = await shopper.get(f"/products/{product_id}")
    assert response.status_code == 200
    assert response.json()["name"] == "Teapot"
    assert (await shopper.get("/products/999999")).status_code == 404


async def test_the_cart_lives_in_the_session(
    shopper: AsyncClient, make_shopper: ShopperFactory
) -> None:
    product_id = await add_product(shopper)
    await add_to_cart(shopper, product_id, 2)
    cart = await add_to_cart(shopper, product_id, 1)
    assert cart == {"items": [{"product_id": product_id, "quantity": 3}]}
    assert (await shopper.get("/cart")).json() == cart
    other = await make_shopper()
    assert (await other.get("/cart")).json() == {"items": []}


async def test_the_cart_refuses_unknown_products_and_bad_quantities(
    shopper: AsyncClient,
) -> None:
    product_id = await add_product(shopper)
    unknown = await shopper.post("/cart/items", json={"product_id": 999999, "quantity": 1})
    assert unknown.status_code == 404
    for quantity in (0, -1):
        response = await shopper.post(
            "/cart/items", json={"product_id": product_id, "quantity": quantity}
        )
        assert response.status_code == 422
    assert (await shopper.get("/cart")).json() == {"items": []}


async def test_an_order_takes_stock_and_empties_the_cart(
    shopper: AsyncClient, database: Database
) -> None:
    teapot = await add_product(shopper, stock=5, price_cents=250)
    cup = await add_product(shopper, stock=10, price_cents=100)
    await add_to_cart(shopper, teapot, 2)
    await add_to_cart(shopper, cup, 4)
    response = await shopper.post("/orders")
    assert response.status_code == 201, response.text
    order = response.json()
    assert order["total_cents"] == 2 * 250 + 4 * 100
    assert order["items"] == [
        {"product_id": teapot, "quantity": 2},
        {"product_id": cup, "quantity": 4},
    ]
    assert await stock(database, teapot) == 3
    assert await stock(database, cup) == 6
    assert (await shopper.get("/cart")).json() == {"items": []}
    fetched = await shopper.get(f"/orders/{order['id']}")
    assert fetched.status_code == 200
    assert fetched.json() == order


async def test_short_stock_is_409_and_changes_nothing(
    shopper: AsyncClient, database: Database
) -> None:
    plenty = await add_product(shopper, stock=10)
    scarce = await add_product(shopper, stock=1)
    await add_to_cart(shopper, plenty, 3)
    cart = await add_to_cart(shopper, scarce, 2)
    response = await shopper.post("/orders")
    assert response.status_code == 409
    assert "detail" in response.json()
    assert await stock(database, plenty) == 10
    assert await stock(database, scarce) == 1
    assert await order_count(database) == 0
    assert (await shopper.get("/cart")).json() == cart


async def test_an_empty_cart_cannot_be_ordered(shopper: AsyncClient) -> None:
    assert (await shopper.post("/orders")).status_code == 409


async def test_a_sold_out_line_can_be_removed_and_the_order_then_goes_through(
    shopper: AsyncClient, make_shopper: ShopperFactory, database: Database
) -> None:
    teapot = await add_product(shopper, stock=1)
    cup = await add_product(shopper, stock=5, price_cents=100)
    await add_to_cart(shopper, teapot, 1)
    await add_to_cart(shopper, cup, 2)
    rival = await make_shopper()
    await add_to_cart(rival, teapot, 1)
    assert (await rival.post("/orders")).status_code == 201
    assert (await shopper.post("/orders")).status_code == 409, "the teapot sold out"

    removed = await shopper.delete(f"/cart/items/{teapot}")
    assert removed.status_code == 200, removed.text
    assert removed.json() == {"items": [{"product_id": cup, "quantity": 2}]}
    assert (await shopper.get("/cart")).json() == removed.json()
    order = await shopper.post("/orders")
    assert order.status_code == 201, order.text
    assert order.json()["items"] == [{"product_id": cup, "quantity": 2}]
    assert await stock(database, cup) == 3


async def test_removing_a_product_not_in_the_cart_leaves_the_cart_as_it_was(
    shopper: AsyncClient,
) -> None:
    cup = await add_product(shopper)
    cart = await add_to_cart(shopper, cup, 2)
    response = await shopper.delete("/cart/items/999999")
    assert response.status_code == 200
    assert response.json() == cart
    assert (await shopper.delete(f"/cart/items/{cup}")).json() == {"items": []}
    again = await shopper.delete(f"/cart/items/{cup}")
    assert again.status_code == 200
    assert again.json() == {"items": []}
    assert (await shopper.get("/cart")).json() == {"items": []}


async def test_a_removal_keeps_parallel_adds_of_other_products(shopper: AsyncClient) -> None:
    """The removal deletes its one line as stored at save time: adds of
    other products running at the same time all count."""
    teapot = await add_product(shopper)
    cup = await add_product(shopper)
    await add_to_cart(shopper, teapot, 1)
    await add_to_cart(shopper, cup, 1)
    item = {"product_id": cup, "quantity": 1}
    responses = await asyncio.gather(
        shopper.delete(f"/cart/items/{teapot}"),
        *(shopper.post("/cart/items", json=item) for _ in range(5)),
    )
    assert [response.status_code for response in responses] == [200] * 6
    assert (await shopper.get("/cart")).json() == {"items": [{"product_id": cup, "quantity": 6}]}


async def test_a_failed_commit_undoes_the_session_change(
    app: FastAPI,
    shopper: AsyncClient,
    make_client: ClientFactory,
    database: Database,
    probe: SessionProbe,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The session is saved before the commit; when the commit then fails,
    the cart, the stock and the orders are all as they were."""
    product_id = await add_product(shopper, stock=5)
    cart = await add_to_cart(shopper, product_id, 2)
    saved_session: list[bool] = []

    async def failing_commit(self: UnitOfWork) -> None:
        # By now get_session has saved the emptied cart.
        saved_session.append(bool(probe.writes))
        raise RuntimeError("the database went away during commit")

    monkeypatch.setattr(UnitOfWork, "commit", failing_commit)
    unchecked = await make_client(raise_app_exceptions=False)
    unchecked.cookies = shopper.cookies
    unchecked.headers = shopper.headers
    probe.operations.clear()
    response = await unchecked.post("/orders")
    monkeypatch.undo()
    assert saved_session == [True]
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal Server Error"}
    assert "set-cookie" not in response.headers
    assert await stock(database, product_id) == 5
    assert await order_count(database) == 0
    assert (await shopper.get("/cart")).json() == cart


async def test_concurrent_orders_for_the_last_unit_sell_it_once(
    shopper: AsyncClient, make_shopper: ShopperFactory, database: Database
) -> None:
    product_id = await add_product(shopper, stock=1)
    buyers = [await make_shopper() for _ in range(4)]
    for buyer in buyers:
        await add_to_cart(buyer, product_id, 1)
    responses = await asyncio.gather(*(buyer.post("/orders") for buyer in buyers))
    assert sorted(response.status_code for response in responses) == [201, 409, 409, 409]
    assert await stock(database, product_id) == 0
    assert await order_count(database) == 1


async def test_parallel_adds_of_one_product_all_count(shopper: AsyncClient) -> None:
    """A double-clicked "add to cart": each add is saved as an increment,
    applied to the quantity as stored, so none is lost."""
    product_id = await add_product(shopper)
    await add_to_cart(shopper, product_id, 1)
    await asyncio.gather(*(add_to_cart(shopper, product_id, 1) for _ in range(6)))
    cart = (await shopper.get("/cart")).json()
    assert cart == {"items": [{"product_id": product_id, "quantity": 7}]}


async def test_parallel_orders_of_one_cart_place_one_order(
    shopper: AsyncClient, database: Database
) -> None:
    """A double-submitted order: the cart is claimed by one order only."""
    product_id = await add_product(shopper, stock=10)
    await add_to_cart(shopper, product_id, 2)
    responses = await asyncio.gather(*(shopper.post("/orders") for _ in range(5)))
    assert sorted(response.status_code for response in responses) == [201, 409, 409, 409, 409]
    assert await stock(database, product_id) == 8
    assert await order_count(database) == 1
    assert (await shopper.get("/cart")).json() == {"items": []}


async def test_numbers_past_the_columns_are_422(shopper: AsyncClient) -> None:
    too_big = 2**31
    for field in ("price_cents", "stock"):
        body = {"name": "Teapot", "price_cents": 1, "stock": 1, field: too_big}
        assert (await shopper.post("/products", json=body)).status_code == 422
    assert (await shopper.get(f"/products/{too_big}")).status_code == 422
    assert (await shopper.get(f"/orders/{2**63}")).status_code == 422
    cart_item = {"product_id": too_big, "quantity": 1}
    assert (await shopper.post("/cart/items", json=cart_item)).status_code == 422


async def test_a_cart_line_is_capped(shopper: AsyncClient) -> None:
    product_id = await add_product(shopper, stock=5000)
    await add_to_cart(shopper, product_id, 600)
    response = await shopper.post("/cart/items", json={"product_id": product_id, "quantity": 600})
    assert response.status_code == 422
    assert (await shopper.get("/cart")).json()["items"] == [
        {"product_id": product_id, "quantity": 600}
    ]


async def test_parallel_adds_cannot_pass_the_line_cap(shopper: AsyncClient) -> None:
    """The cap is checked in the change that adds to the line, against the
    quantity stored then: of ten parallel adds of 200 onto 1, four fit."""
    product_id = await add_product(shopper, stock=5000)
    await add_to_cart(shopper, product_id, 1)
    item = {"product_id": product_id, "quantity": 200}
    responses = await asyncio.gather(*(shopper.post("/cart/items", json=item) for _ in range(10)))
    assert sorted(response.status_code for response in responses) == [200] * 4 + [422] * 6
    assert (await shopper.get("/cart")).json()["items"] == [
        {"product_id": product_id, "quantity": 801}
    ]


async def test_an_order_total_past_the_column_is_409_and_changes_nothing(
    shopper: AsyncClient, database: Database
) -> None:
    product_id = await add_product(shopper, stock=10, price_cents=2**31 - 1)
    cart = await add_to_cart(shopper, product_id, 2)
    response = await shopper.post("/orders")
    assert response.status_code == 409
    assert await stock(database, product_id) == 10
    assert await order_count(database) == 0
    assert (await shopper.get("/cart")).json() == cart


@pytest.mark.parametrize(
    "raw",
    [
        '{"name": "Tea\\u0000pot", "price_cents": 1, "stock": 1}',
        '{"name": "Tea\\ud800pot", "price_cents": 1, "stock": 1}',
        '{"name": "Teapot", "price_cents": NaN, "stock": 1}',
        '{"name": "Teapot", "price_cents": 1, "stock": Infinity}',
        '{"name": "Teapot", "price_cents": 1e309, "stock": 1}',
        '{"name": NaN, "price_cents": 1, "stock": 1}',
    ],
)
async def test_unstorable_input_is_422(shopper: AsyncClient, raw: str) -> None:
    response = await shopper.post(
        "/products", content=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert all("input" not in error for error in response.json()["detail"])


async def test_orders_are_visible_to_their_owner_only(
    shopper: AsyncClient, make_shopper: ShopperFactory
) -> None:
    product_id = await add_product(shopper)
    await add_to_cart(shopper, product_id, 1)
    order_id = (await shopper.post("/orders")).json()["id"]
    assert (await shopper.get(f"/orders/{order_id}")).status_code == 200
    stranger = await make_shopper()
    await add_to_cart(stranger, product_id, 1)
    assert (await stranger.get(f"/orders/{order_id}")).status_code == 404
    assert (await stranger.get("/orders/999999")).status_code == 404


async def test_the_shop_needs_a_login(client: AsyncClient) -> None:
    assert (await client.get("/cart")).status_code == 401
    assert (await client.post("/products", json={})).status_code in (401, 422)
    response = await client.post("/products", json={"name": "Teapot", "price_cents": 1, "stock": 1})
    assert response.status_code == 401


async def test_shop_writes_need_the_csrf_token(shopper: AsyncClient) -> None:
    product_id = await add_product(shopper)
    token = shopper.headers.pop("X-CSRF-Token")
    response = await shopper.post("/cart/items", json={"product_id": product_id, "quantity": 1})
    assert response.status_code == 403
    shopper.headers["X-CSRF-Token"] = token
    assert (await shopper.get("/cart")).json() == {"items": []}
