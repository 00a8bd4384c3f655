"""The whole schema as SQLAlchemy models. Alembic migrations are written to match it
and a test proves `alembic upgrade head` and these models agree."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    Double,
    ForeignKey,
    Identity,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSON, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TIMESTAMP

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

TZ = TIMESTAMP(timezone=True)

# The largest value a BigInteger column holds: every id and amount that reaches one is
# bounded by it where it enters, so an oversize number is a 400 or an invalid event,
# never a database error.
MAX_BIGINT = 2**63 - 1


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: TZ, dict[str, Any]: JSONB}


def _now() -> Any:
    return mapped_column(TZ, server_default=func.now(), nullable=False)


class User(Base):
    __tablename__ = "users"
    # Usernames are stored NFKC-normalised with the case the user typed (shown as is)
    # and unique ignoring case; emails are stored folded (NFKC + casefold), so their
    # plain unique constraint is uniqueness of the normalised form (api/accounts/schemas.py).
    __table_args__ = (Index("uq_users_username_ci", text("lower(username)"), unique=True),)
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    username: Mapped[str] = mapped_column(String(50))
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = _now()
    last_login_at: Mapped[datetime | None] = mapped_column(TZ)
    projects_count: Mapped[int] = mapped_column(Integer, server_default="0")
    unread_messages: Mapped[int] = mapped_column(Integer, server_default="0")


class Project(Base):
    __tablename__ = "projects"
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = _now()


class ProjectApplication(Base):
    __tablename__ = "project_applications"
    __table_args__ = (UniqueConstraint("project_id", "applicant_id"),)
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    applicant_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    cover_letter: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = _now()


class Message(Base):
    __tablename__ = "messages"
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    sender_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    recipient_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = _now()


class Notification(Base):
    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_user_unread", "user_id", "read_at"),)
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    source_event_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    created_at: Mapped[datetime] = _now()
    read_at: Mapped[datetime | None] = mapped_column(TZ)


class StripeCustomer(Base):
    __tablename__ = "stripe_customers"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = _now()


class Payment(Base):
    __tablename__ = "payments"
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    payment_intent_id: Mapped[str] = mapped_column(String(255), unique=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(64))
    # Stripe's `created` of the last event applied, so a stale event never wins.
    status_event_created: Mapped[int | None] = mapped_column(BigInteger)
    # The key the API sent to Stripe when it created the intent (migration 0002), so a
    # retried request finds this row; NULL for rows created from webhooks.
    idempotency_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class Subscription(Base):
    __tablename__ = "subscriptions"
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    subscription_id: Mapped[str] = mapped_column(String(255), unique=True)
    price_id: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(64))
    status_event_created: Mapped[int | None] = mapped_column(BigInteger)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = _now()
    updated_at: Mapped[datetime] = _now()


class IdempotencyClaim(Base):
    """One row per idempotency key of a Stripe write (api/payments/claims.py), committed
    before Stripe is called: the key's owner, the hash of the request it was claimed
    for and, once the write is recorded, its result."""

    __tablename__ = "idempotency_claims"
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    operation: Mapped[str] = mapped_column(String(64))
    request_hash: Mapped[str] = mapped_column(String(64))
    owner: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    claimed_at: Mapped[datetime] = _now()
    completed_at: Mapped[datetime | None] = mapped_column(TZ)


class LoginThrottle(Base):
    """Login budgets shared by every API process (api/ratelimit.py): per key, the
    GCRA's theoretical arrival time in epoch seconds. A row whose `tat` has passed is
    a full budget, the same as no row, and is purged."""

    __tablename__ = "login_throttle"
    scope: Mapped[str] = mapped_column(String(16), primary_key=True)
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    tat: Mapped[float] = mapped_column(Double, index=True)


class StripeEvent(Base):
    __tablename__ = "stripe_events"
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    stripe_event_id: Mapped[str] = mapped_column(String(255), unique=True)
    event_type: Mapped[str] = mapped_column(String(255))
    livemode: Mapped[bool] = mapped_column(server_default=text("false"))
    stripe_created: Mapped[int] = mapped_column(BigInteger)
    payload: Mapped[dict[str, Any]]
    received_at: Mapped[datetime] = _now()


class Outbox(Base):
    """One row per event. `payload` is the complete Kafka value (the envelope) and
    `headers` the complete Kafka headers, so the relay only moves bytes."""

    __tablename__ = "outbox"
    __table_args__ = (
        # The relay's only query: unpublished rows of one shard in id order. Partial,
        # so it stays as small as the backlog however large the table grows.
        Index(
            "ix_outbox_unpublished",
            "shard",
            "id",
            postgresql_where=text("published_at IS NULL"),
        ),
    )
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), unique=True)
    topic: Mapped[str] = mapped_column(String(249))
    key: Mapped[str] = mapped_column(Text)
    event_type: Mapped[str] = mapped_column(String(255))
    aggregate_type: Mapped[str] = mapped_column(String(64))
    aggregate_id: Mapped[str] = mapped_column(Text)
    sequence: Mapped[int] = mapped_column(BigInteger)
    # json, not jsonb: written once, read back only as text by the relay, never
    # queried inside (migration 0005 says what jsonb cost).
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    headers: Mapped[dict[str, Any]] = mapped_column(JSON)
    shard: Mapped[int] = mapped_column(SmallInteger)
    created_at: Mapped[datetime] = _now()
    published_at: Mapped[datetime | None] = mapped_column(TZ)
    receipt: Mapped[dict[str, Any] | None] = mapped_column(JSONB)


class OutboxKeySequence(Base):
    """Last sequence handed out per key. Kept apart from `outbox` so retention can
    delete old events without ever reusing a sequence number."""

    __tablename__ = "outbox_key_sequences"
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    last_sequence: Mapped[int] = mapped_column(BigInteger)


class ProcessedEvent(Base):
    __tablename__ = "processed_events"
    consumer: Mapped[str] = mapped_column(String(100), primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True)
    processed_at: Mapped[datetime] = _now()


class ConsumerKeySequence(Base):
    """Highest sequence each consumer applied per key, to detect gaps and regressions."""

    __tablename__ = "consumer_key_sequences"
    consumer: Mapped[str] = mapped_column(String(100), primary_key=True)
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    last_sequence: Mapped[int] = mapped_column(BigInteger)


class DeadLetter(Base):
    __tablename__ = "dead_letters"
    __table_args__ = (Index("ix_dead_letters_unreplayed", "topic", "replayed_at"),)
    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    source: Mapped[str] = mapped_column(String(32))  # "relay" or "consumer"
    consumer: Mapped[str | None] = mapped_column(String(100))
    topic: Mapped[str] = mapped_column(String(249))
    partition: Mapped[int | None] = mapped_column(Integer)
    offset: Mapped[int | None] = mapped_column(BigInteger)
    outbox_id: Mapped[int | None] = mapped_column(BigInteger)
    event_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    key: Mapped[str | None] = mapped_column(Text)
    value: Mapped[str] = mapped_column(Text)
    headers: Mapped[dict[str, Any]] = mapped_column(server_default=text("'{}'::jsonb"))
    error: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, server_default="1")
    created_at: Mapped[datetime] = _now()
    replayed_at: Mapped[datetime | None] = mapped_column(TZ)
