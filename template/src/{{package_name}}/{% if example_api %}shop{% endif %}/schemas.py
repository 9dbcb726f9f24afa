"""Request and response bodies of the shop routes.

Numbers are bounded by the columns that store them (32-bit `INTEGER` on
PostgreSQL and MySQL), so out-of-range input gets 422, not a database error.
"""

from typing import Annotated

from fastapi import Path
from pydantic import BaseModel, Field

from ..fields import Text

MAX_INT = 2**31 - 1
MAX_QUANTITY = 1000
MAX_TOTAL_CENTS = MAX_INT

# A product or order id in a path.
IdPath = Annotated[int, Path(ge=1, le=MAX_INT)]


class ProductIn(BaseModel):
    name: Text = Field(min_length=1, max_length=200)
    price_cents: int = Field(ge=0, le=MAX_INT)
    stock: int = Field(ge=0, le=MAX_INT)


class ProductOut(ProductIn):
    id: int


class CartItem(BaseModel):
    product_id: int = Field(ge=1, le=MAX_INT)
    quantity: int = Field(ge=1, le=MAX_QUANTITY)


class CartLine(BaseModel):
    """A product and its quantity in a cart or an order."""

    product_id: int
    quantity: int


class Cart(BaseModel):
    items: list[CartLine]


class OrderOut(BaseModel):
    id: int
    total_cents: int
    items: list[CartLine]
