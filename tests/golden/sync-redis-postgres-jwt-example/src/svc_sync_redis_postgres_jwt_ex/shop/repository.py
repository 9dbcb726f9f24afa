"""The shop's tables: products and orders, written in the request's transaction."""

from typing import Any, cast

from fastapi import HTTPException, status
from sqlalchemy import CursorResult, Table, bindparam, select, update

from ..db import DbSession, read_row
from ..models import Order, OrderItem, Product
from .schemas import (
    MAX_TOTAL_CENTS,
    CartLine,
    OrderOut,
    ProductIn,
    ProductOut,
)


def check_total(total: int) -> None:
    """409 for a total the `total_cents` column cannot hold (the order rolls back)."""
    if total > MAX_TOTAL_CENTS:
        raise HTTPException(status.HTTP_409_CONFLICT, "The order total is too large")


def add_product(db: DbSession, body: ProductIn) -> ProductOut:
    product = Product(**body.model_dump())
    db.add(product)
    db.flush()
    return ProductOut.model_validate(product, from_attributes=True)


_products = cast(Table, Product.__table__)
# Read on every cart add: built once.
_PRODUCT = select(_products).where(_products.c.id == bindparam("id"))


def get_product(db: DbSession, product_id: int) -> ProductOut | None:
    """One read (on its own, when the request's transaction has not begun)."""
    row = read_row(db, _PRODUCT, {"id": product_id})
    return ProductOut(**row) if row is not None else None


def place_order(db: DbSession, user_id: int, items: list[CartLine]) -> OrderOut:
    """Take stock for the cart's items and record the order.

    Each decrement is a conditional UPDATE (`stock >= quantity`), so two
    concurrent orders can never both take the last unit. When any product is
    short, the 409 rolls back every decrement.
    """
    total = 0
    lines: list[OrderItem] = []
    for item in items:
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
    order = Order(user_id=user_id, total_cents=total, items=lines)
    db.add(order)
    db.flush()
    return OrderOut(id=order.id, total_cents=total, items=items)


def get_order(db: DbSession, order_id: int, user_id: int) -> OrderOut | None:
    """The order, if it is the user's."""
    order = db.get(Order, order_id)
    if order is None or order.user_id != user_id:
        return None
    return OrderOut(
        id=order.id,
        total_cents=order.total_cents,
        items=[CartLine(product_id=i.product_id, quantity=i.quantity) for i in order.items],
    )
