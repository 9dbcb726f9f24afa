"""Products, the session's cart, and orders placed in one unit of work."""

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, status

from ..auth.deps import CurrentUser, get_current_user
from ..db import DbSession
from ..responses import errors
from ..sessions.deps import CurrentSession, SessionStoreDep, claim
from ..sessions.session import Session
from . import repository
from .schemas import (
    MAX_QUANTITY,
    Cart,
    CartItem,
    CartLine,
    IdPath,
    OrderOut,
    ProductIn,
    ProductOut,
)

# Every route needs a logged-in user; writes also need the CSRF token.
router = APIRouter(
    tags=["shop"],
    dependencies=[Depends(get_current_user)],
    responses=errors(401, 403, 404, 409),
)
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


@router.post("/products", status_code=status.HTTP_201_CREATED)
async def create_product(
    body: ProductIn,
    db: DbSession,
) -> ProductOut:
    return await repository.add_product(db, body)


@router.get("/products/{product_id}")
async def get_product(
    product_id: IdPath,
    db: DbSession,
) -> ProductOut:
    product = await repository.get_product(db, product_id)
    if product is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Product not found")
    return product


@router.post("/cart/items")
async def add_to_cart(
    item: CartItem,
    db: DbSession,
    session: CurrentSession,
) -> Cart:
    if await repository.get_product(db, item.product_id) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Product not found")
    # Saved as a delta: parallel adds of one product all count, and the
    # line's limit is checked against the quantity stored then (422 past it).
    session.increment(f"{CART_KEY}{item.product_id}", item.quantity, limit=MAX_QUANTITY)
    return read_cart(session)


@router.post("/orders", status_code=status.HTTP_201_CREATED)
async def place_order(
    db: DbSession,
    session: CurrentSession,
    store: SessionStoreDep,
    user: CurrentUser,
) -> OrderOut:
    """Take stock and record the order in one unit of work, then empty the cart.

    Two concurrent orders can never both take the last unit. When any product
    is short, the 409 undoes every decrement and the cart stays as it was.
    """
    # The cart is taken out of the session first, atomically: of parallel
    # orders on one session (a double submit), one gets the cart and the
    # others find it empty. If the order fails, the cart is put back.
    cart = cart_of(await claim(session, store, CART_KEY))
    if not cart.items:
        raise HTTPException(status.HTTP_409_CONFLICT, "The cart is empty")
    order = await repository.place_order(db, user.id, cart.items)
    session["last_order_id"] = order.id
    return order


@router.get("/orders/{order_id}")
async def get_order(
    order_id: IdPath,
    db: DbSession,
    user: CurrentUser,
) -> OrderOut:
    order = await repository.get_order(db, order_id, user.id)
    if order is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Order not found")
    return order


@router.get("/cart")
async def get_cart(session: CurrentSession) -> Cart:
    return read_cart(session)


@router.delete("/cart/items/{product_id}")
async def remove_from_cart(product_id: IdPath, session: CurrentSession) -> Cart:
    """The cart without the product's line (the same cart if it has none):
    how a shopper drops a product that sold out, which would fail every order.
    Deleted from the cart as stored when the session is saved, so an add of
    the product running at the same time is either removed too or kept whole."""
    session.discard(f"{CART_KEY}{product_id}")
    return read_cart(session)
