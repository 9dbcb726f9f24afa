"""The shop's collections: products and orders, read and written in the request's unit of work."""

from functools import partial
from typing import Any

from fastapi import HTTPException, status

from ..db import UnitOfWork, next_id
from .schemas import (
    MAX_TOTAL_CENTS,
    CartLine,
    OrderOut,
    ProductIn,
    ProductOut,
)


def product_out(document: dict[str, Any]) -> ProductOut:
    return ProductOut.model_validate(document | {"id": document["_id"]})


def check_total(total: int) -> None:
    """409 for a total past `MAX_TOTAL_CENTS`, the bound of every number the
    shop stores (the order is undone)."""
    if total > MAX_TOTAL_CENTS:
        raise HTTPException(status.HTTP_409_CONFLICT, "The order total is too large")


async def add_product(db: UnitOfWork, body: ProductIn) -> ProductOut:
    product = ProductOut(id=await next_id(db, "products"), **body.model_dump())
    await db.products.insert_one({"_id": product.id, **body.model_dump()}, session=db.txn)
    db.on_rollback(partial(db.products.delete_one, {"_id": product.id}))
    return product


async def get_product(db: UnitOfWork, product_id: int) -> ProductOut | None:
    product = await db.products.find_one({"_id": product_id}, session=db.txn)
    if product is None:
        return None
    return product_out(product)


async def place_order(db: UnitOfWork, user_id: int, items: list[CartLine]) -> OrderOut:
    """Take stock for the cart's items and record the order.

    Each decrement is a conditional update (`stock >= quantity`), so two
    concurrent orders can never both take the last unit. When any product is
    short, the 409 undoes every decrement (the transaction aborts, or, on a
    server without transactions, each decrement's inverse runs).
    """
    total = 0
    lines: list[dict[str, int]] = []
    for item in items:
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
            "user_id": user_id,
            "total_cents": total,
            "items": lines,
        },
        session=db.txn,
    )
    db.on_rollback(partial(db.orders.delete_one, {"_id": order_id}))
    return OrderOut(id=order_id, total_cents=total, items=items)


async def get_order(db: UnitOfWork, order_id: int, user_id: int) -> OrderOut | None:
    """The order, if it is the user's."""
    order = await db.orders.find_one({"_id": order_id, "user_id": user_id}, session=db.txn)
    if order is None:
        return None
    items = [CartLine.model_validate(line) for line in order["items"]]
    return OrderOut(id=order_id, total_cents=order["total_cents"], items=items)
