"""Emails kept as given, compared in a canonical form.

`email` now holds the address as the user gave it, and the new column
`email_canonical` the form that uniqueness, logins and login limits compare
(its unique index replaces the one on `email`). The emails stored before
this revision were stored in that canonical form: they stay as they are,
and get their canonical form beside them (an upgrade stops, naming them, if
two of them have one).

The downgrade puts the canonical form back into `email` (the form the code
before this revision stores and looks up): the spellings as given are lost.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

import unicodedata
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The type of `email`, and of `email_canonical`.
EMAIL_TYPE = sa.String(length=320)
users = sa.table(
    "users",
    sa.column("id", sa.Integer()),
    sa.column("email", sa.String()),
    sa.column("email_canonical", sa.String()),
)


def canonical_email(email: str) -> str:
    """`auth.accounts.normalize_email` as of this revision (copied: a
    migration must not change when the code does)."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", email.strip()).casefold())


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("email_canonical", EMAIL_TYPE, nullable=True))
    connection = op.get_bind()
    rows = connection.execute(sa.select(users.c.id, users.c.email)).all()
    owners: dict[str, list[str]] = {}
    for _, email in rows:
        owners.setdefault(canonical_email(email), []).append(email)
    clashes = [emails for emails in owners.values() if len(emails) > 1]
    if clashes:
        raise RuntimeError(f"these emails have one canonical form: {clashes}")
    for user_id, email in rows:
        connection.execute(
            users.update()
            .where(users.c.id == user_id)
            .values(email_canonical=canonical_email(email))
        )
    with op.batch_alter_table("users") as batch:
        batch.alter_column("email_canonical", existing_type=EMAIL_TYPE, nullable=False)
        batch.drop_constraint(op.f("uq_users_email"), type_="unique")
        batch.create_unique_constraint(op.f("uq_users_email_canonical"), ["email_canonical"])


def downgrade() -> None:
    op.execute(users.update().values(email=users.c.email_canonical))
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint(op.f("uq_users_email_canonical"), type_="unique")
        batch.create_unique_constraint(op.f("uq_users_email"), ["email"])
        batch.drop_column("email_canonical")
