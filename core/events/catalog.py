"""Every event contract of the platform, so the doc, the cross-check test and any
reader can find the contract of an event type."""

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


def contract_for(event_type: str) -> type[EventContract] | None:
    for contract in CONTRACTS:
        if contract.matches(event_type):
            return contract
    return None
