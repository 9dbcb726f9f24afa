"""Request and response bodies of the auth routes."""

from typing import Literal

from pydantic import BaseModel, EmailStr, Field

from ..fields import Text


class Credentials(BaseModel):
    email: EmailStr
    # Argon2 cost grows with the input: cap it.
    password: Text = Field(min_length=8, max_length=1024)


class PasswordChange(BaseModel):
    current_password: Text = Field(max_length=1024)
    new_password: Text = Field(min_length=8, max_length=1024)


class UserOut(BaseModel):
    id: int
    email: str


class TokenForm(BaseModel):
    """The OAuth2 password form, held to the rules of `Credentials`:
    `username` is the email."""

    grant_type: Literal["password"] | None = None
    username: EmailStr
    password: Text = Field(min_length=8, max_length=1024)


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int


class RefreshIn(BaseModel):
    refresh_token: Text = Field(max_length=256)
