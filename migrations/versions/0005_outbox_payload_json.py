"""outbox: payload and headers as json, not jsonb

The relay reads every event back as text (`payload::text`, `headers::text`) and
nothing queries inside them, so jsonb's binary form was paid twice: converting to it
on every insert and back to text on every fetch. On a scratch table of the same rows
the Postgres backend spent 19-20.5 us per insert and 6-7 us per fetched row as jsonb
against 11.5 and 1.25 us as json (README, *Benchmarks*). json still rejects what is
not JSON; the text is kept as the writer rendered it, which is what the relay sends.

Rewrites the table under an exclusive lock: run it with writes paused on a large
outbox (retention keeps it to OUTBOX_RETENTION_HOURS of events).

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE outbox ALTER COLUMN payload TYPE json USING payload::json,"
        " ALTER COLUMN headers TYPE json USING headers::json"
    )


def downgrade() -> None:
    op.execute(
        "ALTER TABLE outbox ALTER COLUMN payload TYPE jsonb USING payload::jsonb,"
        " ALTER COLUMN headers TYPE jsonb USING headers::jsonb"
    )
