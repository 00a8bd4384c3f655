"""payment idempotency keys

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 12:00:00.000000

The API's create-payment-intent and create-subscription remember the idempotency key
they sent to Stripe on the row they wrote, so a retried request finds its row and
returns the same Stripe object instead of creating a second one (localstripe ignores
`Idempotency-Key`, and real Stripe forgets keys after 24 hours). Unique, so two
concurrent retries cannot both keep a row; NULL for rows the payment consumer created
from webhooks.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("payments", "subscriptions")


def upgrade() -> None:
    for table in TABLES:
        op.add_column(table, sa.Column("idempotency_key", sa.String(length=255), nullable=True))
        op.create_unique_constraint(op.f(f"uq_{table}_idempotency_key"), table, ["idempotency_key"])


def downgrade() -> None:
    for table in TABLES:
        op.drop_constraint(op.f(f"uq_{table}_idempotency_key"), table, type_="unique")
        op.drop_column(table, "idempotency_key")
