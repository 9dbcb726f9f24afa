"""Products, the session's cart, and orders placed in one transaction."""

from collections.abc import Mapping
from typing import Any, cast

from fastapi import APIRouter, HTTPException, status
from sqlalchemy import CursorResult, update

from svc_sync_redis_postgres_jwt_ex.auth.deps import CurrentUser
from svc_sync_redis_postgres_jwt_ex.db import DbSession
from svc_sync_redis_postgres_jwt_ex.models import Order, OrderItem, Product
from svc_sync_redis_postgres_jwt_ex.responses import errors
from svc_sync_redis_postgres_jwt_ex.sessions.deps import CurrentSession, SessionStoreDep, claim
from svc_sync_redis_postgres_jwt_ex.sessions.session import Session
from svc_sync_redis_postgres_jwt_ex.shop.schemas import (
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

# Every route needs a bearer token of a live login session.
router = APIRouter(tags=["shop"], responses=errors(401, 404, 409))
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


def check_total(total: int) -> None:
    """409 for a total the `total_cents` column cannot hold (the order rolls back)."""
    if total > MAX_TOTAL_CENTS:
        raise HTTPException(status.HTTP_409_CONFLICT, "The order total is too large")


@router.post("/products", status_code=status.HTTP_201_CREATED)
def create_product(
    body: ProductIn,
    db: DbSession,
    _user: CurrentUser,
) -> ProductOut:
    product = Product(**body.model_dump())
    db.add(product)
    db.flush()
    return ProductOut.model_validate(product, from_attributes=True)


@router.get("/products/{product_id}")
def get_product(
    product_id: IdPath,
    db: DbSession,
    _user: CurrentUser,
) -> ProductOut:
    product = db.get(Product, product_id)
    if product is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Product not found")
    return ProductOut.model_validate(product, from_attributes=True)


@router.post("/cart/items")
def add_to_cart(
    item: CartItem,
    db: DbSession,
    session: CurrentSession,
    _user: CurrentUser,
) -> Cart:
    if db.get(Product, item.product_id) is None:
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
def get_cart(
    session: CurrentSession,
    _user: CurrentUser,
) -> Cart:
    return read_cart(session)


@router.post("/orders", status_code=status.HTTP_201_CREATED)
def place_order(
    db: DbSession,
    session: CurrentSession,
    store: SessionStoreDep,
    user: CurrentUser,
) -> OrderOut:
    """Take stock and record the order in one transaction, then empty the cart.

    Each decrement is a conditional UPDATE (`stock >= quantity`), so two
    concurrent orders can never both take the last unit. When any product is
    short, the 409 rolls back every decrement and the cart stays as it was.
    """
    # The cart is taken out of the session first, atomically: of parallel
    # orders on one session (a double submit), one gets the cart and the
    # others find it empty. If the order fails, the cart is put back.
    cart = cart_of(claim(session, store, CART_KEY))
    if not cart.items:
        raise HTTPException(status.HTTP_409_CONFLICT, "The cart is empty")
    total = 0
    lines: list[OrderItem] = []
    for item in cart.items:
        product = db.get(Product, item.product_id)
        taken = db.execute(
            update(Product)
            .where(Product.id == item.product_id, Product.stock >= item.quantity)
            .values(stock=Product.stock - item.quantity)
        )
        if product is None or cast(CursorResult[Any], taken).rowcount != 1:
            raise HTTPException(
                status.HTTP_409_CONFLICT, f"Not enough stock for product {item.product_id}"
            )
        total += product.price_cents * item.quantity
        lines.append(
            OrderItem(
                product_id=item.product_id, quantity=item.quantity, price_cents=product.price_cents
            )
        )
    check_total(total)
    order = Order(user_id=user.id, total_cents=total, items=lines)
    db.add(order)
    db.flush()
    order_id = order.id
    session["last_order_id"] = order_id
    return OrderOut(id=order_id, total_cents=total, items=cart.items)


@router.get("/orders/{order_id}")
def get_order(
    order_id: IdPath,
    db: DbSession,
    user: CurrentUser,
) -> OrderOut:
    order = db.get(Order, order_id)
    if order is None or order.user_id != user.id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Order not found")
    return OrderOut(
        id=order.id,
        total_cents=order.total_cents,
        items=[CartLine(product_id=i.product_id, quantity=i.quantity) for i in order.items],
    )
