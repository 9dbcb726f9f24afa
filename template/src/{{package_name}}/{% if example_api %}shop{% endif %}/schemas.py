"""Request and response bodies of the shop routes."""

from pydantic import BaseModel, Field


class ProductIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    price_cents: int = Field(ge=0)
    stock: int = Field(ge=0)


class ProductOut(ProductIn):
    id: int


class CartItem(BaseModel):
    product_id: int
    quantity: int = Field(ge=1, le=1000)


class Cart(BaseModel):
    items: list[CartItem]


class OrderOut(BaseModel):
    id: int
    total_cents: int
    items: list[CartItem]
