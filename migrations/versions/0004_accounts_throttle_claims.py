"""accounts normalised, login throttle, idempotency claims

Revision ID: 0004
Revises: 0003

* Usernames unique ignoring case: the unique constraint on `username` becomes a
  unique index on `lower(username)`. The API now stores usernames NFKC-normalised and
  ASCII-only (A-Z a-z 0-9 _ . -), which earlier versions also enforced, so for every
  row lower() is the case fold.
* Emails stored folded (NFKC + casefold) instead of lower(): ASCII emails are
  unchanged; the few non-ASCII ones are rewritten here.
* If existing rows collide under the new rules the migration stops, changes nothing
  and names the rows: which account keeps the name is a decision for a person, not
  for a migration.
* `login_throttle`: the login budgets every API process shares.
* `idempotency_claims`: a Stripe write's key, claimed before Stripe is called.
"""

import unicodedata
from collections import defaultdict
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


class DuplicateAccounts(RuntimeError):
    pass


def _fold(value: str) -> str:
    # A copy of api.accounts.schemas.fold as of this revision: a migration must not change
    # meaning when the application's code does.
    return unicodedata.normalize("NFKC", value).strip().casefold()


def _refuse_collisions(kind: str, groups: dict[str, list[int]]) -> None:
    clashes = {name: ids for name, ids in groups.items() if len(ids) > 1}
    if not clashes:
        return
    listed = "; ".join(f"{name!r}: user ids {sorted(ids)}" for name, ids in sorted(clashes.items()))
    raise DuplicateAccounts(
        f"migration 0004 stopped, nothing changed: {len(clashes)} {kind} collide once "
        f"normalised ({listed}). Rename or merge all but one account of each, then rerun."
    )


def upgrade() -> None:
    conn = op.get_bind()
    usernames: dict[str, list[int]] = defaultdict(list)
    for user_id, username in conn.execute(sa.text("SELECT id, username FROM users")):
        usernames[username.lower()].append(user_id)
    _refuse_collisions("usernames", usernames)

    emails: dict[str, list[int]] = defaultdict(list)
    rewrites: list[dict[str, object]] = []
    for user_id, email in conn.execute(sa.text("SELECT id, email FROM users")):
        folded = _fold(email)
        emails[folded].append(user_id)
        if folded != email:
            rewrites.append({"id": user_id, "email": folded})
    _refuse_collisions("emails", emails)
    if rewrites:
        conn.execute(sa.text("UPDATE users SET email = :email WHERE id = :id"), rewrites)

    op.drop_constraint(op.f("uq_users_username"), "users", type_="unique")
    op.create_index("uq_users_username_ci", "users", [sa.text("lower(username)")], unique=True)

    op.create_table(
        "login_throttle",
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("tat", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("scope", "key", name=op.f("pk_login_throttle")),
    )
    op.create_index(op.f("ix_login_throttle_tat"), "login_throttle", ["tat"], unique=False)

    op.create_table(
        "idempotency_claims",
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("operation", sa.String(length=64), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("owner", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("result", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "claimed_at",
            postgresql.TIMESTAMP(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("completed_at", postgresql.TIMESTAMP(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_idempotency_claims")),
    )


def downgrade() -> None:
    op.drop_table("idempotency_claims")
    op.drop_index(op.f("ix_login_throttle_tat"), table_name="login_throttle")
    op.drop_table("login_throttle")
    op.drop_index("uq_users_username_ci", table_name="users")
    # Fails, as it should, if names that differ only in case were registered since.
    op.create_unique_constraint(op.f("uq_users_username"), "users", ["username"])
