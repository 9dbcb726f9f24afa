"""Products, the session's cart, and orders placed in one unit of work."""

from collections.abc import Mapping
from functools import partial
from typing import Any

from fastapi import APIRouter, HTTPException, status

from svc_async_mongo_session_ex.auth.deps import CurrentUser
from svc_async_mongo_session_ex.db import DbSession, next_id
from svc_async_mongo_session_ex.responses import errors
from svc_async_mongo_session_ex.sessions.deps import CurrentSession, SessionStoreDep, claim
from svc_async_mongo_session_ex.sessions.session import Session
from svc_async_mongo_session_ex.shop.schemas import (
    MAX_QUANTITY,
    MAX_TOTAL_CENTS,
    Cart,
    CartItem,
    CartLine,
    IdPath,
    OrderOut,
    ProductIn,
    ProductOut,
)

# Every route needs a logged-in user; writes also need the CSRF token.
router = APIRouter(tags=["shop"], responses=errors(401, 403, 404, 409))
# The cart is kept in the session, one key per product (`cart:<id>`: quantity),
# so that concurrent requests adding different products both count: sessions
# merge concurrent changes key by key.
CART_KEY = "cart:"


def cart_of(data: Mapping[str, Any]) -> Cart:
    """The cart lines among session data, by product id."""
    lines = [
        CartLine(product_id=int(key.removeprefix(CART_KEY)), quantity=quantity)
        for key, quantity in data.items()
        if key.startswith(CART_KEY)
    ]
    return Cart(items=sorted(lines, key=lambda line: line.product_id))


def read_cart(session: Session) -> Cart:
    return cart_of(session)


def product_out(document: dict[str, Any]) -> ProductOut:
    return ProductOut.model_validate(document | {"id": document["_id"]})


def check_total(total: int) -> None:
    """409 for a total the `total_cents` column cannot hold (the order rolls back)."""
    if total > MAX_TOTAL_CENTS:
        raise HTTPException(status.HTTP_409_CONFLICT, "The order total is too large")


@router.post("/products", status_code=status.HTTP_201_CREATED)
async def create_product(
    body: ProductIn,
    db: DbSession,
    _user: CurrentUser,
) -> ProductOut:
    product = ProductOut(id=await next_id(db, "products"), **body.model_dump())
    await db.products.insert_one({"_id": product.id, **body.model_dump()}, session=db.txn)
    db.on_rollback(partial(db.products.delete_one, {"_id": product.id}))
    return product


@router.get("/products/{product_id}")
async def get_product(
    product_id: IdPath,
    db: DbSession,
    _user: CurrentUser,
) -> ProductOut:
    product = await db.products.find_one({"_id": product_id}, session=db.txn)
    if product is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Product not found")
    return product_out(product)


@router.post("/cart/items")
async def add_to_cart(
    item: CartItem,
    db: DbSession,
    session: CurrentSession,
    _user: CurrentUser,
) -> Cart:
    if await db.products.find_one({"_id": item.product_id}, session=db.txn) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Product not found")
    key = f"{CART_KEY}{item.product_id}"
    if session.get(key, 0) + item.quantity > MAX_QUANTITY:
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"At most {MAX_QUANTITY} of one product per cart"
        )
    # Saved as a delta: parallel adds of one product all count.
    session.increment(key, item.quantity)
    return read_cart(session)


@router.get("/cart")
async def get_cart(
    session: CurrentSession,
    _user: CurrentUser,
) -> Cart:
    return read_cart(session)


@router.post("/orders", status_code=status.HTTP_201_CREATED)
async def place_order(
    db: DbSession,
    session: CurrentSession,
    store: SessionStoreDep,
    user: CurrentUser,
) -> OrderOut:
    """Take stock and record the order in one unit of work, then empty the cart.

    Each decrement is a conditional update (`stock >= quantity`), so two
    concurrent orders can never both take the last unit. When any product is
    short, the 409 undoes every decrement (the transaction aborts, or, on a
    server without transactions, each decrement's inverse runs) and the cart
    stays as it was.
    """
    # The cart is taken out of the session first, atomically: of parallel
    # orders on one session (a double submit), one gets the cart and the
    # others find it empty. If the order fails, the cart is put back.
    cart = cart_of(await claim(session, store, CART_KEY))
    if not cart.items:
        raise HTTPException(status.HTTP_409_CONFLICT, "The cart is empty")
    total = 0
    lines: list[dict[str, int]] = []
    for item in cart.items:
        product = await db.products.find_one_and_update(
            {"_id": item.product_id, "stock": {"$gte": item.quantity}},
            {"$inc": {"stock": -item.quantity}},
            session=db.txn,
        )
        if product is None:
            raise HTTPException(
                status.HTTP_409_CONFLICT, f"Not enough stock for product {item.product_id}"
            )
        db.on_rollback(
            partial(
                db.products.update_one,
                {"_id": item.product_id},
                {"$inc": {"stock": item.quantity}},
            )
        )
        total += product["price_cents"] * item.quantity
        lines.append(
            {
                "product_id": item.product_id,
                "quantity": item.quantity,
                "price_cents": product["price_cents"],
            }
        )
    check_total(total)
    order_id = await next_id(db, "orders")
    await db.orders.insert_one(
        {
            "_id": order_id,
            "user_id": user.id,
            "total_cents": total,
            "items": lines,
        },
        session=db.txn,
    )
    db.on_rollback(partial(db.orders.delete_one, {"_id": order_id}))
    session["last_order_id"] = order_id
    return OrderOut(id=order_id, total_cents=total, items=cart.items)


@router.get("/orders/{order_id}")
async def get_order(
    order_id: IdPath,
    db: DbSession,
    user: CurrentUser,
) -> OrderOut:
    order = await db.orders.find_one({"_id": order_id, "user_id": user.id}, session=db.txn)
    if order is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Order not found")
    items = [CartLine.model_validate(line) for line in order["items"]]
    return OrderOut(id=order_id, total_cents=order["total_cents"], items=items)
