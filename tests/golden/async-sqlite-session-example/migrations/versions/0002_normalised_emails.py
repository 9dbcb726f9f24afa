"""Emails in one normalised form.

Login limits are keyed by the normalised email, so the lookup must find
exactly that form: existing emails are normalised here (an upgrade stops,
naming them, if two of them become one).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

import unicodedata
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

users = sa.table("users", sa.column("id", sa.Integer()), sa.column("email", sa.String()))


def normalize_email(email: str) -> str:
    """`auth.accounts.normalize_email` as of this revision (copied: a
    migration must not change when the code does)."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", email.strip()).casefold())


def upgrade() -> None:
    connection = op.get_bind()
    rows = connection.execute(sa.select(users.c.id, users.c.email)).all()
    owners: dict[str, list[str]] = {}
    for _, email in rows:
        owners.setdefault(normalize_email(email), []).append(email)
    clashes = [emails for emails in owners.values() if len(emails) > 1]
    if clashes:
        raise RuntimeError(f"these emails are one address once normalised: {clashes}")
    for user_id, email in rows:
        if normalize_email(email) != email:
            connection.execute(
                users.update().where(users.c.id == user_id).values(email=normalize_email(email))
            )


def downgrade() -> None:
    # The emails stay normalised: the original spellings are not kept.
    pass
