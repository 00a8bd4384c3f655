"""Every event contract of the platform: what docs/events.md documents and what the
contract test holds the producers and the handlers to."""

from __future__ import annotations

from core.events.contract import EventContract
from core.events.messages import MessageSent
from core.events.payments import (
    CustomerCreated,
    PaymentIntentCreated,
    PaymentProcessed,
    SubscriptionCreated,
)
from core.events.projects import ProjectApplied, ProjectCreated
from core.events.users import UserLoggedIn, UserRegistered
from core.stripe.event import StripeSnapshotEvent

CONTRACTS: tuple[type[EventContract], ...] = (
    UserRegistered,
    UserLoggedIn,
    ProjectCreated,
    ProjectApplied,
    MessageSent,
    CustomerCreated,
    PaymentIntentCreated,
    SubscriptionCreated,
    PaymentProcessed,
    StripeSnapshotEvent,
)
