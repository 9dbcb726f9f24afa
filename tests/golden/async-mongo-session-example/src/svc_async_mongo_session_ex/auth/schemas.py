"""Request and response bodies of the auth routes."""

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, EmailStr, Field, field_validator

from ..fields import Text
from .accounts import mixes_scripts, normalize_email
from .common_passwords import not_common

# A password being set: 8 characters at least, and not a common one.
NewPassword = Annotated[Text, Field(min_length=8, max_length=1024), AfterValidator(not_common)]


def new_address(email: str) -> str:
    """Refuse a look-alike (its local part mixes scripts), and an address
    whose canonical form is over 320 characters (NFKC can lengthen it)."""
    if mixes_scripts(email):
        raise ValueError("the part before @ mixes scripts (a look-alike address)")
    if len(normalize_email(email)) > 320:
        raise ValueError("the address is too long")
    return email


class Credentials(BaseModel):
    # Trimmed, its domain lower-cased and in its IDNA Unicode form; else as given.
    email: EmailStr
    # Argon2 cost grows with the input: cap it.
    password: Text = Field(min_length=8, max_length=1024)


class Registration(Credentials):
    password: NewPassword

    @field_validator("email")
    @classmethod
    def refuse_look_alikes(cls, email: str) -> str:
        return new_address(email)


class PasswordChange(BaseModel):
    current_password: Text = Field(max_length=1024)
    new_password: NewPassword


class UserOut(BaseModel):
    id: int
    email: str


class Me(UserOut):
    email_verified: bool
    # Whether the account has a second factor (TOTP) active.
    mfa: bool


class TokenIn(BaseModel):
    """A token from a mailed link."""

    token: Text = Field(max_length=200)


class PasswordForgotten(BaseModel):
    email: EmailStr


class PasswordReset(TokenIn):
    new_password: NewPassword


class EmailChange(BaseModel):
    new_email: EmailStr
    current_password: Text = Field(max_length=1024)

    @field_validator("new_email")
    @classmethod
    def refuse_look_alikes(cls, email: str) -> str:
        return new_address(email)


class Accepted(BaseModel):
    detail: str


class CurrentPassword(BaseModel):
    current_password: Text = Field(max_length=1024)


class TotpSetup(BaseModel):
    # Base32, for typing into an authenticator app; `otpauth_uri` is the same
    # secret for a QR code.
    secret: str
    otpauth_uri: str


class CodeIn(BaseModel):
    # A TOTP code (six digits) or a recovery code.
    code: Text = Field(max_length=64)


class RecoveryCodes(BaseModel):
    recovery_codes: list[str]


class MfaRequired(BaseModel):
    """The password was right; the second factor's code is asked next."""

    mfa_required: Literal[True] = True


class LoginOut(UserOut):
    csrf_token: str


class SessionOut(BaseModel):
    id: str
    created_at: datetime
    last_seen: datetime
    current: bool
