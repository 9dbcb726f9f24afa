"""The tables. Alembic migrations (`migrations/versions/`) create them."""

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .db import Base


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    # As the user gave it (its domain lower-cased): shown, never compared.
    email: Mapped[str] = mapped_column(sa.String(320))
    # Its canonical form (`auth.accounts.normalize_email`): unique, what logins
    # look up, compared exactly.
    email_canonical: Mapped[str] = mapped_column(sa.String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(sa.String(255))
    is_active: Mapped[bool] = mapped_column(default=True)
    # Raised by every change of credentials (`auth.accounts.revoke_credentials`):
    # a session made before it (`SessionRecord.credential_epoch` below it) is refused.
    credential_epoch: Mapped[int] = mapped_column(default=0, server_default="0")
    # Whether the user followed a link mailed to `email`.
    email_verified: Mapped[bool] = mapped_column(default=False)
    # The second factor (`auth/totp.py`): its secret, encrypted; a secret set
    # up but not confirmed yet; the time step of the last code used.
    totp_secret: Mapped[str | None] = mapped_column(sa.String(255))
    totp_pending: Mapped[str | None] = mapped_column(sa.String(255))
    totp_step: Mapped[int | None]


class OutboxMail(Base):
    """A mail to send, written in the request's transaction and deleted once
    the SMTP server took it (`mail/sender.py`): what it says is made then,
    from `kind` and `data` (`auth/mails.py`)."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(32))
    recipient: Mapped[str] = mapped_column(sa.String(320))
    data: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    attempts: Mapped[int]
    # Unix time before which no sender takes it: the next try, or the end of
    # the lease of the sender that took it.
    not_before: Mapped[float] = mapped_column(sa.Double, index=True)


class AccountToken(Base):
    """A token mailed to a user (verify the email, reset the password, confirm
    a new email): only its SHA-256 is stored; it works once, until `expires_at`."""

    __tablename__ = "account_tokens"

    token_hash: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(sa.String(16))
    # The address being confirmed (purpose "email").
    new_email: Mapped[str | None] = mapped_column(sa.String(320))
    expires_at: Mapped[float] = mapped_column(sa.Double)


class RecoveryCode(Base):
    """The unused recovery codes of a user's second factor, as SHA-256 hashes."""

    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(sa.String(64))


class SessionRecord(Base):
    """A server-side session. The client holds the secret token; only its
    SHA-256 is stored, so a leaked table or dump reveals no live session."""

    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    handle: Mapped[str] = mapped_column(sa.String(32), unique=True)
    user_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    csrf_token: Mapped[str] = mapped_column(sa.String(64))
    data: Mapped[dict[str, Any]] = mapped_column(sa.JSON)
    # Unix times, in seconds.
    created_at: Mapped[float] = mapped_column(sa.Double)
    last_seen: Mapped[float] = mapped_column(sa.Double)
    expires_at: Mapped[float] = mapped_column(sa.Double, index=True)
    # The user's `credential_epoch` when the login that made it checked the credentials.
    credential_epoch: Mapped[int] = mapped_column(default=0, server_default="0")


class RateLimit(Base):
    """Events counted per key in fixed windows (failed logins, see `auth/limits.py`)."""

    __tablename__ = "rate_limits"

    name: Mapped[str] = mapped_column(sa.String(100), primary_key=True)
    hits: Mapped[int]
    # Unix time, in seconds, when the current window ends.
    resets_at: Mapped[float] = mapped_column(sa.Double, index=True)


class Product(Base):
    __tablename__ = "products"
    __table_args__ = (sa.CheckConstraint("stock >= 0", name="stock_not_negative"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(200))
    price_cents: Mapped[int]
    stock: Mapped[int]


class Order(Base):
    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    total_cents: Mapped[int]
    items: Mapped[list["OrderItem"]] = relationship(lazy="selectin")


class OrderItem(Base):
    __tablename__ = "order_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(sa.ForeignKey("orders.id"), index=True)
    product_id: Mapped[int] = mapped_column(sa.ForeignKey("products.id"))
    quantity: Mapped[int]
    price_cents: Mapped[int]
